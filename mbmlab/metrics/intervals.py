"""Headline metrics with their bootstrap 95% intervals, in the ``metrics.json`` form
``<name>``, ``<name>/ci95_low``, ``<name>/ci95_high`` (see ``bootstrap``). Items are resampled
as they were sampled: questions, clips, images."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import bootstrap as B
from .stats import mean_interval
from .vqa import answers_correct, normalise_answer  # noqa: F401  (answers_correct: 04 calls it here)


def accuracy_metrics(correct, groups=None, prefix: str = "accuracy", seed: int = 0, clusters=None) -> dict[str, float]:
    """Mean of 0/1 ``correct`` with its interval, overall and per value of ``groups``; ``clusters``
    (one label per item: the image a question asks about) are what the interval resamples."""
    correct = np.asarray(correct, dtype=float)
    units = None if clusters is None else np.asarray(clusters)
    out = B.with_interval(prefix, *_split(mean_interval(correct, units, seed=seed)))
    if groups is not None:
        groups = np.asarray(groups)
        for value in sorted(set(groups.tolist()), key=str):
            rows = groups == value
            out |= B.with_interval(f"{prefix}/{value}",
                                   *_split(mean_interval(correct[rows], None if units is None else units[rows], seed=seed)))
    return out


def _split(estimate_low_high: tuple[float, float, float]) -> tuple[float, tuple[float, float]]:
    return estimate_low_high[0], estimate_low_high[1:]


def paired_difference(a, b, units, name: str, seed: int = 0) -> dict[str, float]:
    """mean(a − b) over paired scores of the same items, with ``stats.paired_test``'s interval
    (whole ``units`` resampled: the images the questions were asked about, whose questions are not
    independent draws) and its sign-flip p-value (``<name>/p_value``)."""
    from .stats import paired_test

    test = paired_test(a, b, clusters=list(units), seed=seed)
    return B.with_interval(name, test["difference"], (test["ci95_low"], test["ci95_high"])) | {
        f"{name}/p_value": test["p_value"]}


def error_rate_metrics(references: list[str], predictions: list[str], seed: int = 0) -> dict[str, float]:
    """Corpus WER and CER (jiwer, after ``normalise_answer`` on both sides) with intervals that
    resample clips and recompute total edits over total reference words (characters)."""
    out = {}
    for name in ("wer", "cer"):
        edits, sizes = per_clip_edits(references, predictions, name)
        out |= B.with_interval(name, float(edits.sum() / sizes.sum()), B.ratio_interval(edits, sizes, seed=seed))
    return out


def per_clip_edits(references, predictions, unit: str = "wer") -> tuple[np.ndarray, np.ndarray]:
    """Per clip, after ``normalise_answer`` on both sides: edits (substitutions + deletions +
    insertions, jiwer) and reference words (``"wer"``) or characters (``"cer"``)."""
    import jiwer

    process, count = {"wer": (jiwer.process_words, lambda r: len(r.split())),
                      "cer": (jiwer.process_characters, len)}[unit]
    refs = [normalise_answer(r) for r in references]
    hyps = [normalise_answer(p) for p in predictions]
    edits = [(o := process(r, h)).substitutions + o.deletions + o.insertions for r, h in zip(refs, hyps)]
    return np.array(edits, dtype=float), np.array([count(r) for r in refs], dtype=float)


def caption_metrics_with_intervals(references: dict[str, list[str]], predictions: dict[str, str],
                                   resamples: int = 200, seed: int = 0) -> dict[str, float]:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr-D and exact match over the images, with intervals that
    resample images: BLEU recomputed on each resample (corpus-level); CIDEr-D, ROUGE-L and exact
    match as means of their per-image scores (CIDEr's document frequencies stay those of the whole
    test set); METEOR without an interval (a Java process per resample would take minutes)."""
    from pycocoevalcap.bleu.bleu import Bleu

    from .caption import exact_match_hits, tokenize, tokenized_scores

    ids = sorted(predictions)
    gts, res = tokenize({k: references[k] for k in ids}, {k: predictions[k] for k in ids})
    scores, per_image = tokenized_scores(gts, res)
    out = {}

    def bleu(indices) -> list[float]:
        keys = [f"{j}" for j in range(len(indices))]
        picked = [ids[i] for i in indices]
        return Bleu(4).compute_score(dict(zip(keys, (gts[k] for k in picked))),
                                     dict(zip(keys, (res[k] for k in picked))), verbose=0)[0]

    draws = np.array([bleu(idx) for idx in B.resample_indices(len(ids), resamples, seed)])  # (resamples, 4)
    for n in range(4):
        out |= B.with_interval(f"BLEU-{n + 1}", scores[f"BLEU-{n + 1}"], B.interval(draws[:, n]))
    hits = exact_match_hits(references, predictions)
    per_image |= {"exact_match": [hits[k] for k in ids]}
    scores["exact_match"] = float(np.mean(per_image["exact_match"]))
    for name, values in per_image.items():
        out |= B.with_interval(name, scores[name], mean_interval(values, seed=seed)[1:])
    out["METEOR"] = scores["METEOR"]
    return out


def table(results: dict[str, dict[str, float]], digits: int = 4) -> pd.DataFrame:
    """Columns = what was scored (model, baselines), rows = metrics, cells ``value [low, high]``."""
    columns = {}
    for who, metrics in results.items():
        cells = {}
        for name, value in metrics.items():
            if name.endswith(("/ci95_low", "/ci95_high")):
                continue
            low, high = metrics.get(f"{name}/ci95_low"), metrics.get(f"{name}/ci95_high")
            cells[name] = f"{value:.{digits}f}" + (f" [{low:.{digits}f}, {high:.{digits}f}]" if low is not None else "")
        columns[who] = cells
    return pd.DataFrame(columns)
