"""Bias audit: attribute co-occurrence in data and predictions, accuracy per group."""
from __future__ import annotations

import pandas as pd

from .vocab import COLOURS, SHAPES


def parse_caption(text: str) -> tuple[str, str]:
    """(colour, shape) named in a caption such as "a blue rectangle"; "" for what it does not name."""
    words = text.lower().split()
    colour = next((w for w in words if w in COLOURS), "")
    shape = next((w for w in words if w in SHAPES), "")
    return colour, shape


def cooccurrence(frame: pd.DataFrame, rows: str = "colour", cols: str = "shape",
                 normalize: bool = True) -> pd.DataFrame:
    """Counts of (rows, cols) pairs; with ``normalize`` each row sums to 1: P(cols | rows).

    Rows and columns with empty values (attribute unknown) are left out; every colour and
    shape of the vocabulary is shown, even with a zero count.
    """
    known = frame[(frame[rows] != "") & (frame[cols] != "")]
    table = pd.crosstab(known[rows], known[cols])
    index = COLOURS if rows == "colour" else sorted(table.index)
    columns = SHAPES if cols == "shape" else sorted(table.columns)
    table = table.reindex(index=index, columns=columns, fill_value=0)
    if normalize:
        totals = table.sum(axis=1).replace(0, float("nan"))
        table = table.div(totals, axis=0)
    return table


def joint_distribution(frame: pd.DataFrame, rows: str = "colour", cols: str = "shape") -> pd.DataFrame:
    """P(rows, cols) over the records where both attributes are known (all cells sum to 1)."""
    counts = cooccurrence(frame, rows, cols, normalize=False)
    total = counts.values.sum()
    if total == 0:
        raise ValueError(f"no record has both {rows} and {cols}; cannot form a joint distribution")
    return counts / total


def total_variation(p: pd.DataFrame, q: pd.DataFrame) -> float:
    """Total variation distance ½·Σ|p − q| between two distributions on the same cells (0 = same, 1 = disjoint)."""
    if p.shape != q.shape or list(p.index) != list(q.index) or list(p.columns) != list(q.columns):
        raise ValueError("distributions must be over the same cells")
    return float(0.5 * (p - q).abs().values.sum())


def accuracy_by(frame: pd.DataFrame, group: str, correct: str = "correct") -> pd.DataFrame:
    """Accuracy and count per value of ``group`` (rows with an unknown group are left out)."""
    known = frame[frame[group] != ""]
    out = known.groupby(group)[correct].agg(accuracy="mean", n="size").reset_index()
    return out.sort_values("accuracy").reset_index(drop=True)


def accuracy_gap(table: pd.DataFrame) -> float:
    """Best minus worst group accuracy."""
    return float(table["accuracy"].max() - table["accuracy"].min())


def plot_cooccurrence(tables: dict[str, pd.DataFrame], title: str):
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, len(tables), figsize=(4.2 * len(tables), 3.8), sharey=True)
    axes = axes if len(tables) > 1 else [axes]
    for ax, (name, table) in zip(axes, tables.items()):
        sns.heatmap(table, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="rocket_r", cbar=False, ax=ax)
        ax.set_title(name)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_group_accuracy(tables: dict[str, pd.DataFrame], baseline: float | None = None):
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, len(tables), figsize=(4.5 * len(tables), 3.4), sharey=True)
    axes = axes if len(tables) > 1 else [axes]
    for ax, (group, table) in zip(axes, tables.items()):
        sns.barplot(table, x=group, y="accuracy", ax=ax, color="#4c72b0")
        if baseline is not None:
            ax.axhline(baseline, ls="--", c="grey", label="majority baseline")
            ax.legend(loc="lower right")
        ax.set_ylim(0, 1)
        ax.set_title(f"VQA accuracy by {group}")
        ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig
