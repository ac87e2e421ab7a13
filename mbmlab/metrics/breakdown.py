"""Where the errors are: a confusion matrix of answers and the worst cases of a task."""
from __future__ import annotations

import pandas as pd

from .vqa import answers_correct, normalise_answer


def confusion(frame: pd.DataFrame, truth: str = "answer", prediction: str = "prediction",
              top: int = 20) -> pd.DataFrame:
    """Counts of (true answer, predicted answer) over the ``top`` most frequent true answers; the
    predictions outside them are gathered as "(other)". Rows: true answers; columns: predictions."""
    true = frame[truth].map(normalise_answer)
    predicted = frame[prediction].map(normalise_answer)
    keep = true.value_counts().index[:top]
    predicted = predicted.where(predicted.isin(keep), "(other)")
    table = pd.crosstab(true[true.isin(keep)], predicted[true.isin(keep)])
    columns = [a for a in keep if a in table.columns] + (["(other)"] if "(other)" in table.columns else [])
    return table.reindex(index=list(keep), columns=columns, fill_value=0)


def plot_confusion(table: pd.DataFrame, title: str = "answers: true (rows) vs predicted (columns)"):
    import matplotlib.pyplot as plt
    import seaborn as sns

    shares = table.div(table.sum(axis=1).clip(lower=1), axis=0)
    fig, ax = plt.subplots(figsize=(0.45 * len(table.columns) + 3, 0.4 * len(table) + 2))
    sns.heatmap(shares, annot=table, fmt="d", cmap="Blues", cbar_kws={"label": "share of the row"}, ax=ax,
                annot_kws={"fontsize": 7})
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return fig


def worst(frame: pd.DataFrame, truth: str = "answer", prediction: str = "prediction", n: int = 10,
          by: tuple[str, ...] = ("question_type", "answer", "prediction")) -> pd.DataFrame:
    """The most frequent kinds of wrong answer: wrong rows grouped by ``by``, largest groups first."""
    wrong = frame[answers_correct(frame[prediction], frame[truth]) == 0]
    columns = [c for c in by if c in wrong.columns]
    if wrong.empty:
        return pd.DataFrame(columns=[*columns, "count"])
    return wrong.groupby(columns).size().rename("count").sort_values(ascending=False).head(n).reset_index()
