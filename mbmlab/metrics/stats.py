"""The statistics behind every interval and every "established" in the reports.

- ``mean_interval``: the mean with a percentile-bootstrap 95% interval (Efron & Tibshirani 1993,
  "An Introduction to the Bootstrap", ch. 13) that resamples whole **clusters** when given — the
  unit the data were drawn by: an image for its questions, a clip for its words. Questions about
  one image are not independent draws; resampling them one by one gives intervals that are too
  narrow (Field & Welsh 2007, "Bootstrapping clustered data", JRSS-B 69(3): the cluster bootstrap).
  Each resample's mean is the sum over the drawn clusters of their sums over the sum of their
  sizes (the ratio estimator: clusters of unequal size count by their items).
- ``group_gap_test``: the gap between the best and the worst group (max − min of the group means,
  or of Σ numerator / Σ denominator per group, as WER is), with a bootstrap interval and a
  **permutation test** of "no difference between groups" (group labels shuffled over the items;
  Good 2005, "Permutation, Parametric and Bootstrap Tests of Hypotheses", ch. 3). The interval of
  a max − min can never include 0 — the statistic is ≥ 0 and biased upward on noise — so it
  describes the gap's size only; whether a gap is there at all is the permutation test's call:
  ``established`` is ``p_value < 0.05``. p = (1 + #{permuted gap ≥ observed}) / (1 + permutations)
  (Phipson & Smyth 2010: never 0).
"""
from __future__ import annotations

import numpy as np

from .bootstrap import RESAMPLES, interval, resample_indices


def mean_interval(values, clusters=None, seed: int = 0, n_resamples: int = RESAMPLES,
                  level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of per-item ``values``; ``clusters`` (one label per item) makes the
    bootstrap draw whole clusters with replacement (None: every item is its own cluster)."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or not len(values):
        raise ValueError("mean_interval needs a non-empty 1-d array of values")
    if clusters is not None and len(clusters) != len(values):
        raise ValueError(f"{len(clusters)} cluster labels for {len(values)} values")
    sums, sizes = _cluster_sums(values, clusters)
    idx = resample_indices(len(sums), n_resamples, seed)
    low, high = interval(sums[idx].sum(axis=1) / sizes[idx].sum(axis=1), level)
    return float(values.mean()), low, high


def _gaps(numerators, denominators, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """max − min over groups for each row of ``codes`` (R, N): one bincount for all rows."""
    rows = codes.shape[0]
    flat = (np.arange(rows)[:, None] * n_groups + codes).ravel()
    num = np.bincount(flat, weights=np.broadcast_to(numerators, codes.shape).ravel(), minlength=rows * n_groups)
    den = np.bincount(flat, weights=np.broadcast_to(denominators, codes.shape).ravel(), minlength=rows * n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_group = (num / den).reshape(rows, n_groups)
    return np.nanmax(per_group, axis=1) - np.nanmin(per_group, axis=1)


def group_gap_test(values, groups, denominators=None, seed: int = 0, n_resamples: int = RESAMPLES,
                   level: float = 0.95) -> dict:
    """Best − worst group: ``{gap, ci95_low, ci95_high, p_value, established, groups}``.

    ``values`` per item (0/1 correct, or a clip's word edits with ``denominators`` its reference
    words); ``groups`` one label per item. The interval resamples items; the p-value shuffles the
    group labels ``n_resamples`` times."""
    num = np.asarray(values, dtype=float)
    den = np.ones(len(num)) if denominators is None else np.asarray(denominators, dtype=float)
    labels = np.asarray(groups)
    if not (len(num) == len(den) == len(labels)) or not len(num):
        raise ValueError("values, denominators and groups must be non-empty and pair up")
    names, codes = np.unique(labels, return_inverse=True)
    codes = codes.ravel()
    if len(names) < 2:
        raise ValueError(f"a gap needs two groups or more; got {len(names)}")
    observed = float(_gaps(num, den, codes[None, :], len(names))[0])
    idx = resample_indices(len(num), n_resamples, seed)
    boot = _gaps(num[idx], den[idx], codes[idx], len(names))
    low, high = interval(boot[np.isfinite(boot)], level)
    rng = np.random.default_rng(seed + 1)
    shuffled = np.stack([rng.permutation(codes) for _ in range(n_resamples)])
    permuted = _gaps(num, den, shuffled, len(names))
    p_value = float((1 + np.sum(permuted >= observed - 1e-12)) / (1 + n_resamples))
    return {"gap": observed, "ci95_low": low, "ci95_high": high, "p_value": p_value,
            "established": p_value < 0.05, "groups": len(names)}


def _cluster_sums(values, clusters) -> tuple[np.ndarray, np.ndarray]:
    """(sum per cluster, items per cluster) in cluster order; no clusters: every item its own."""
    values = np.asarray(values, dtype=float)
    if clusters is None:
        return values, np.ones(len(values))
    codes = np.unique(np.asarray(clusters), return_inverse=True)[1].ravel()
    return np.bincount(codes, weights=values), np.bincount(codes).astype(float)


def paired_test(a, b, clusters=None, denominators=None, seed: int = 0, n_resamples: int = RESAMPLES,
                level: float = 0.95, n_permutations: int | None = None) -> dict:
    """Two models scored on the same test items: ``{difference, ci95_low, ci95_high, p_value}``.

    difference = (Σa − Σb) / Σdenominators (denominators 1: the difference of the means; a clip's
    reference words: the difference of corpus WERs). The interval resamples whole ``clusters``
    (images, clips) with both models' scores of a cluster kept together (the paired bootstrap);
    the two-sided p-value is a sign-flip permutation test — under "no difference" the two models'
    sums of a cluster are exchangeable, so each cluster's difference is negated with probability 1/2
    (Good 2005, ch. 3). Its smallest possible value is 1 / (1 + ``n_permutations``) (default
    ``n_resamples``): a caller correcting for m tests at level α needs n_permutations well above
    m / α, or no test can pass (``mbmlab.lab.compare.permutations_for``)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or not len(a):
        raise ValueError("paired scores must be non-empty and of the same items")
    den = np.ones(len(a)) if denominators is None else np.asarray(denominators, dtype=float)
    d, n = _cluster_sums(a - b, clusters)
    w, _ = _cluster_sums(den, clusters)
    observed = float(d.sum() / w.sum())
    idx = resample_indices(len(d), n_resamples, seed)
    low, high = interval(d[idx].sum(axis=1) / w[idx].sum(axis=1), level)
    permutations = n_permutations or n_resamples
    rng, exceed = np.random.default_rng(seed + 1), 0
    for start in range(0, permutations, RESAMPLES):  # in blocks: the memory of 1,000 at a time
        signs = rng.choice([-1.0, 1.0], size=(min(RESAMPLES, permutations - start), len(d)))
        exceed += int(np.sum(np.abs((signs * d).sum(axis=1) / w.sum()) >= abs(observed) - 1e-12))
    p_value = float((1 + exceed) / (1 + permutations))
    return {"difference": observed, "ci95_low": low, "ci95_high": high, "p_value": p_value}


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979): sort ascending, multiply the k-th smallest
    by (m − k + 1), carry the running maximum, cap at 1. Rejecting where adjusted p < α keeps the
    chance of any false call among the m tests ≤ α."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def seed_mean_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """One number measured once per seed: (mean, low, high), the Student t interval of the mean
    over seeds, mean ± t(n−1) · s / √n (s the n−1 standard deviation); NaN bounds for one seed."""
    from scipy import stats as st

    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, float("nan"), float("nan")
    half = float(st.t.ppf((1 + level) / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return mean, mean - half, mean + half


def seed_difference(a, b, level: float = 0.95, paired: bool | None = None) -> dict:
    """Two configurations trained with several seeds each (one value per seed): the difference of
    the means with Welch's t interval (unequal variances; Welch 1947) and its two-sided p-value;
    with paired seeds (seed k in both; ``paired=None`` assumes so when the lengths match) the
    paired t interval of the differences."""
    from scipy import stats as st

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("a comparison across seeds needs two seeds or more per arm")
    paired = len(a) == len(b) if paired is None else paired
    if paired and len(a) != len(b):
        raise ValueError(f"paired seeds need as many values in both arms, not {len(a)} and {len(b)}")
    if (np.ptp(a - b) == 0) if paired else (np.ptp(a) == 0 and np.ptp(b) == 0):  # no spread to test with
        d = float(a.mean() - b.mean())
        return {"difference": d, "ci95_low": d, "ci95_high": d, "p_value": 1.0 if d == 0 else 0.0,
                "seeds": (len(a), len(b))}
    result = st.ttest_rel(a, b) if paired else st.ttest_ind(a, b, equal_var=False)
    low, high = result.confidence_interval(level)
    return {"difference": float(a.mean() - b.mean()), "ci95_low": float(low), "ci95_high": float(high),
            "p_value": float(result.pvalue), "seeds": (len(a), len(b))}


def cluster_resamples(clusters, n_resamples: int = RESAMPLES, seed: int = 0) -> list[np.ndarray]:
    """Item indices of ``n_resamples`` bootstrap resamples that draw whole clusters with
    replacement (an item appears once per time its cluster is drawn): for statistics that are not
    means (bias amplification), recomputed on each resample."""
    labels = np.asarray(clusters)
    codes = np.unique(labels, return_inverse=True)[1].ravel()
    members = [np.flatnonzero(codes == k) for k in range(codes.max() + 1)] if len(codes) else []
    draws = resample_indices(len(members), n_resamples, seed)
    return [np.concatenate([members[k] for k in row]) for row in draws]
