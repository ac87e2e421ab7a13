"""Speech fairness (notebook 05_bias): do the ASR error rate and the spoken-VQA accuracy differ
between voice groups — voice, accent, gender, TTS engine?

Per group values, the difference (largest − smallest group) and the ratio (smallest / largest)
come from fairlearn's ``MetricFrame``; whether a difference is there at all is
``metrics.stats.group_gap_test``'s permutation test (voice labels shuffled over the clips;
``difference/p_value``, ``difference/established`` when p < 0.05), and its interval (clips
resampled, each group's corpus value recomputed from per-clip counts — edits over reference words
for WER, correct over asked for accuracy) gives the size only: a best − worst interval never holds 0.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..metrics import bootstrap as B
from ..metrics.stats import group_gap_test
from ..metrics.vqa import answers_correct

GROUPS = ("voice", "accent", "gender", "engine")


def word_error_rate(y_true, y_pred) -> float:
    """Corpus WER after 04's normalisation (jiwer)."""
    from ..metrics import error_rates

    return error_rates(list(y_true), list(y_pred))["wer"]


def exact_match(y_true, y_pred) -> float:
    return float(np.mean(answers_correct(y_pred, y_true)))


def per_item(frame: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(numerator, denominator) per clip: WER edits and reference words, or correct and 1."""
    if metric == "wer":
        from ..metrics.intervals import per_clip_edits

        return per_clip_edits(list(frame["reference"]), list(frame["prediction"]), "wer")
    if metric == "exact_match":
        return answers_correct(frame["prediction"], frame["answer"]), np.ones(len(frame))
    raise ValueError(f"unknown metric {metric!r}; metrics: wer, exact_match")


def disparity(frame: pd.DataFrame, group: str, metric: str, resamples: int = B.RESAMPLES, seed: int = 0):
    """fairlearn ``MetricFrame`` of ``metric`` by ``group``: (table of group values with clip
    counts, {difference, its interval, ratio})."""
    from fairlearn.metrics import MetricFrame

    function = word_error_rate if metric == "wer" else exact_match
    truth = frame["reference"] if metric == "wer" else frame["answer"]
    mf = MetricFrame(metrics={metric: function}, y_true=truth.to_numpy(), y_pred=frame["prediction"].to_numpy(),
                     sensitive_features=frame[group].to_numpy())
    table = mf.by_group.reset_index().rename(columns={"sensitive_feature_0": group})
    table["clips"] = table[group].map(frame[group].value_counts())
    num, den = per_item(frame, metric)
    test = group_gap_test(num, frame[group].astype(str), den, seed=seed, n_resamples=resamples)
    summary = {"difference": float(mf.difference()[metric]), "difference/ci95_low": test["ci95_low"],
               "difference/ci95_high": test["ci95_high"], "difference/p_value": test["p_value"],
               "difference/established": float(test["established"]), "ratio": float(mf.ratio()[metric])}
    return table, summary


def speech_fairness(asr: pd.DataFrame | None, spoken: pd.DataFrame | None, groups=GROUPS, seed: int = 0):
    """Disparities of ASR WER and spoken-VQA exact match for every group column present:
    ({(task, group): table}, flat metrics ``fairness/<task>/<group>/difference|ratio``)."""
    tables, metrics = {}, {}
    for task, frame, metric in (("asr", asr, "wer"), ("spoken_vqa", spoken, "exact_match")):
        if frame is None or not len(frame):
            continue
        for group in groups:
            if group not in frame.columns or frame[group].nunique() < 2:
                continue
            table, summary = disparity(frame, group, metric, seed=seed)
            tables[(task, group)] = table
            metrics |= {f"fairness/{task}/{group}/{k}": v for k, v in summary.items()}
    return tables, metrics


def plot_disparities(tables: dict, metrics: dict):
    """One panel per (task, group): each group's value, the spread named in the title."""
    import matplotlib.pyplot as plt

    columns = min(4, len(tables))  # rows of four panels: eight in one row are too small to read
    rows = -(-len(tables) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(tables):]:
        ax.axis("off")
    for ax, ((task, group), table) in zip(axes.flat, tables.items()):
        metric = table.columns[1]
        ax.barh(table[group].astype(str), table[metric], color="#4c72b0")
        key = f"fairness/{task}/{group}/difference"
        ax.set_title(f"{task} {metric} by {group}\ndifference {metrics[key]:.3f} "
                     f"[{metrics[key + '/ci95_low']:.3f}, {metrics[key + '/ci95_high']:.3f}]", fontsize=8)
        ax.set_xlim(0, max(1.0, float(table[metric].max()) * 1.05))
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def speech_section(asr: pd.DataFrame | None, spoken: pd.DataFrame | None, seed: int = 0):
    """05's speech-fairness section: (figure or None, the lines it prints, the metrics it records)."""
    tables, metrics = speech_fairness(asr, spoken, seed=seed)
    if not tables:
        return None, ["note: no speech was evaluated (or one voice group only); speech fairness is skipped"], {}
    lines = []
    for (task, group), table in tables.items():
        key = f"fairness/{task}/{group}"
        lines.append(f"{task} by {group}: difference {metrics[key + '/difference']:.4f} "
                     f"[{metrics[key + '/difference/ci95_low']:.4f}, {metrics[key + '/difference/ci95_high']:.4f}], "
                     f"ratio {metrics[key + '/ratio']:.4f}; permutation p = {metrics[key + '/difference/p_value']:.3f}: "
                     + ("a difference between groups is established" if metrics[key + "/difference/established"]
                        else "no difference between groups is established"))
        lines.append(table.round(4).to_string(index=False))
    return plot_disparities(tables, metrics), lines, metrics
