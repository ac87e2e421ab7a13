"""Machine-translation scores with intervals: corpus BLEU (Papineni et al. 2002, as sacrebleu
computes it: Post 2018, WMT) with the target language's tokenizer (``zh``: sacrebleu's Chinese
tokenizer, which splits every CJK character) and chrF (Popović 2015, character 6-grams, β = 2).

Both are corpus scores, not means of sentence scores, so the interval resamples the sentences'
sufficient statistics (n-gram matches and totals; for chrF character and word n-gram counts) by
cluster, sums them and scores the sum: the percentile bootstrap of ``mbmlab.metrics.bootstrap``,
with the clusters the data were drawn by (images; the clips of one image together).
"""
from __future__ import annotations

import numpy as np

from ..names import LANGUAGES
from . import bootstrap as B
from .stats import cluster_resamples


def scorers(language: str):
    """``{"bleu": BLEU, "chrf": CHRF}`` for a target language of ``mbmlab.names.LANGUAGES``."""
    from sacrebleu.metrics import BLEU, CHRF

    if language not in LANGUAGES:
        raise ValueError(f"no BLEU tokenizer for language {language!r}; supported: {', '.join(LANGUAGES)}")
    return {"bleu": BLEU(tokenize=LANGUAGES[language]["bleu_tokenize"]), "chrf": CHRF()}


def _statistics(metric, predictions: list[str], references: list[str]) -> np.ndarray:
    """(sentences, statistics): each sentence's sufficient statistics as sacrebleu extracts them."""
    return np.asarray(metric._extract_corpus_statistics(list(predictions), [list(references)]), dtype=float)


def _score(metric, stats: np.ndarray, rows: np.ndarray) -> float:
    """The corpus score of the sentences ``rows`` (with repeats): their statistics summed, scored."""
    return float(metric._compute_score_from_stats(stats[rows].sum(axis=0).tolist()).score)


def _draws(n: int, clusters, seed: int, resamples: int) -> list[np.ndarray]:
    if n == 0:
        raise ValueError("no sentences to score")
    return cluster_resamples(np.arange(n) if clusters is None else np.asarray(clusters), resamples, seed)


def translation_metrics(references: list[str], predictions: list[str], language: str, clusters=None,
                        seed: int = 0, resamples: int = B.RESAMPLES) -> dict[str, float]:
    """``{"bleu", "bleu/ci95_low", "bleu/ci95_high", "chrf", …}`` on sacrebleu's 0–100 scale; one
    reference per prediction; ``clusters`` (default: each sentence its own) are resampled whole."""
    if len(references) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    draws, everything = _draws(len(references), clusters, seed, resamples), np.arange(len(references))
    out: dict[str, float] = {}
    for name, metric in scorers(language).items():
        stats = _statistics(metric, predictions, references)
        out |= B.with_interval(name, _score(metric, stats, everything),
                               B.interval(np.array([_score(metric, stats, rows) for rows in draws])))
    return out


def translation_difference(references: list[str], a: list[str], b: list[str], language: str, name: str,
                           clusters=None, seed: int = 0, resamples: int = B.RESAMPLES) -> dict[str, float]:
    """Paired corpus differences ``a`` − ``b`` of BLEU and chrF on the same references (the same
    clusters drawn for both on each resample): ``{f"{name}/bleu": d, …/ci95_low, …/ci95_high, …}``."""
    if not len(references) == len(a) == len(b):
        raise ValueError("a, b and the references must pair up")
    draws, everything = _draws(len(references), clusters, seed, resamples), np.arange(len(references))
    out: dict[str, float] = {}
    for metric_name, metric in scorers(language).items():
        sa, sb = _statistics(metric, a, references), _statistics(metric, b, references)

        def gap(rows: np.ndarray) -> float:
            return _score(metric, sa, rows) - _score(metric, sb, rows)

        out |= B.with_interval(f"{name}/{metric_name}", gap(everything), B.interval(np.array([gap(r) for r in draws])))
    return out
