"""Speech recognition: word and character error rates through jiwer.

Both sides are normalised the same way before scoring — lower case, punctuation dropped,
whitespace collapsed (``normalise_answer``) — so "What color is the shape?" and "what color is
the shape" are the same words. WER and CER are corpus-level: total edits over total reference
words (characters), as jiwer computes them over lists.
"""
from __future__ import annotations

import pandas as pd

from .vqa import normalise_answer


def error_rates(references: list[str], predictions: list[str]) -> dict[str, float]:
    import jiwer

    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references for {len(predictions)} predictions")
    if not references:
        raise ValueError("no transcripts to score")
    refs = [normalise_answer(r) for r in references]
    hyps = [normalise_answer(p) for p in predictions]
    if not all(refs):
        raise ValueError("an empty reference transcript cannot be scored")
    return {"wer": float(jiwer.wer(refs, hyps)), "cer": float(jiwer.cer(refs, hyps))}


def exact_share(references: list[str], predictions: list[str]) -> float:
    """The share of transcripts right word for word (after ``normalise_answer``)."""
    if len(references) != len(predictions) or not references:
        raise ValueError(f"{len(references)} references for {len(predictions)} predictions")
    return sum(normalise_answer(r) == normalise_answer(p) for r, p in zip(references, predictions)) / len(references)


def error_rates_by(frame: pd.DataFrame, group: str) -> pd.DataFrame:
    """WER, CER and the exact share per value of ``group`` (voice, accent, gender, engine), with
    clip counts; ``frame`` has ``reference`` and ``prediction`` columns."""
    rows = []
    for value, part in frame.groupby(group, sort=True):
        refs, preds = list(part["reference"]), list(part["prediction"])
        rows.append({group: value, "clips": len(part), **error_rates(refs, preds), "exact": exact_share(refs, preds)})
    return pd.DataFrame(rows, columns=[group, "clips", "wer", "cer", "exact"])
