"""Answer exact match (the normalised answer equals the reference), overall and per question
type; baselines that never look at the image. This is what VQA accuracy reduces to when every
question has one reference answer (easy-VQA, scenes); ``vqa_v2`` has the full VQA-v2 metric."""
from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd


def normalise_answer(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def answers_correct(predictions, answers) -> np.ndarray:
    """0/1 per item: the normalised prediction equals the normalised answer (exact match)."""
    return np.array([normalise_answer(p) == normalise_answer(a) for p, a in zip(predictions, answers)], dtype=float)


def exact_match_by_type(frame: pd.DataFrame, prediction: str = "prediction") -> dict[str, float]:
    """``frame`` has ``answer``, ``question_type`` and a prediction column."""
    correct = pd.Series(answers_correct(frame[prediction], frame["answer"]), index=frame.index)
    scores = {"exact_match": float(correct.mean())}
    for kind, hits in correct.groupby(frame["question_type"]):
        scores[f"exact_match/{kind}"] = float(hits.mean())
    return scores


def majority_answer(train_answers: list[str]) -> str:
    """The most frequent training answer (ties broken alphabetically, so it is deterministic)."""
    counts = Counter(train_answers)
    return min(counts, key=lambda a: (-counts[a], a))


def majority_by_type(train: pd.DataFrame) -> dict[str, str]:
    """Most frequent training answer within each question type: a stronger 'blind' baseline."""
    return {kind: majority_answer(list(group["answer"])) for kind, group in train.groupby("question_type")}
