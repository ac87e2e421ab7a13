"""Bootstrap confidence intervals: resample the test items with replacement, recompute the
metric, take the 2.5th and 97.5th percentiles of the resampled values (the percentile bootstrap,
Efron & Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13). Items are what was sampled
independently: images for VQA (their questions together), clips for ASR, images for captions;
``stats.mean_interval`` resamples such clusters."""
from __future__ import annotations

import numpy as np

RESAMPLES = 1000


def resample_indices(n_items: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """(resamples, n_items) indices drawn with replacement; the same seed draws the same ones."""
    if n_items < 1:
        raise ValueError("no items to resample")
    return np.random.default_rng(seed).integers(0, n_items, size=(resamples, n_items))


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def ratio_interval(numerators, denominators, resamples: int = RESAMPLES, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float]:
    """Interval of a corpus-level ratio sum(numerators) / sum(denominators) with items resampled
    as pairs (WER: edits over reference words; perplexity's NLL over tokens)."""
    num, den = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    if num.shape != den.shape:
        raise ValueError("numerators and denominators must pair up")
    idx = resample_indices(len(num), resamples, seed)
    return interval(num[idx].sum(axis=1) / den[idx].sum(axis=1), level)


def with_interval(name: str, value: float, low_high: tuple[float, float]) -> dict[str, float]:
    """``{name: value, name/ci95_low: …, name/ci95_high: …}`` as metrics.json stores them."""
    return {name: value, f"{name}/ci95_low": low_high[0], f"{name}/ci95_high": low_high[1]}
