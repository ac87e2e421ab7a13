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


def answer_matches(prediction: str, answer: str) -> bool:
    """The exact-match rule, the one place it is written: the normalised prediction equals the
    normalised answer. VQA, spoken VQA, caption exact match, the baselines, the bias audit, speech
    fairness and the counterfactual probes all call it (directly or through ``answers_correct``)."""
    return normalise_answer(prediction) == normalise_answer(answer)


def answers_correct(predictions, answers) -> np.ndarray:
    """0/1 per item: ``answer_matches`` (exact match)."""
    return np.array([answer_matches(p, a) for p, a in zip(predictions, answers, strict=True)], dtype=float)


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


def blind_questions(frame: pd.DataFrame, min_images: int = 20, max_truth_share: float = 0.9) -> pd.DataFrame:
    """Question texts answered as if the image were not there: asked of at least ``min_images``
    images, given one and the same (normalised) answer for every one of them, while the true
    answers vary (the most common covers at most ``max_truth_share`` of them, so the constant
    answer is wrong on at least the rest). ``frame`` has ``question``, ``answer``, ``prediction``
    and ``image_id``. Returns one row per such text: question, images, the answer given, exact
    match, most wrong first."""
    columns = ["question", "images", "answered", "exact_match"]
    rows = []
    for question, group in frame.groupby("question", sort=True):
        given = group["prediction"].map(normalise_answer)
        truth = group["answer"].map(normalise_answer)
        if group["image_id"].nunique() < min_images or given.nunique() != 1:
            continue
        if truth.value_counts(normalize=True).iloc[0] > max_truth_share:
            continue
        right = answers_correct(group["prediction"], group["answer"]).mean()  # the exact-match rule
        rows.append((question, group["image_id"].nunique(), given.iloc[0], float(right)))
    return pd.DataFrame(rows, columns=columns).sort_values(["exact_match", "question"], ignore_index=True)
