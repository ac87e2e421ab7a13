"""The data card: what is in each split, as numbers and plots."""
from __future__ import annotations

from collections import Counter

import datasets
import pandas as pd


def qa_frame(dataset: datasets.Dataset) -> pd.DataFrame:
    """One row per question: image_id, question, answer, question_type, colour, shape."""
    cols = dataset.select_columns(["image_id", "questions", "answers", "question_types", "colour", "shape"])
    rows = []
    for r in cols:
        for q, a, t in zip(r["questions"], r["answers"], r["question_types"], strict=True):
            rows.append({"image_id": r["image_id"], "question": q, "answer": a, "question_type": t,
                         "colour": r["colour"], "shape": r["shape"]})
    return pd.DataFrame(rows)


def data_card(dataset: datasets.DatasetDict, drops) -> dict:
    card = {"splits": {}, "drops": drops.counts()}
    for name, split in dataset.items():
        qa = qa_frame(split)
        card["splits"][name] = {
            "images": len(split),
            "questions": len(qa),
            "captions": sum(1 for c in split["caption"] if c),
            "question_types": dict(sorted(Counter(qa["question_type"]).items())),
            "answers": dict(sorted(Counter(qa["answer"]).items())),
        }
    return card


def counts_table(card: dict) -> pd.DataFrame:
    return pd.DataFrame({name: {k: v for k, v in s.items() if isinstance(v, int)}
                         for name, s in card["splits"].items()})


def plot_answer_distribution(card: dict):
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = pd.DataFrame([
        {"split": name, "answer": answer, "share": n / split["questions"]}
        for name, split in card["splits"].items() for answer, n in split["answers"].items()
    ])
    fig, ax = plt.subplots(figsize=(9, 3.5))
    sns.barplot(frame, x="answer", y="share", hue="split", ax=ax)
    ax.set_title("Answer distribution per split")
    ax.set_ylabel("share of questions")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig


def plot_examples(dataset: datasets.Dataset, n: int = 8):
    """A row of images with their derived captions."""
    import matplotlib.pyplot as plt

    n = min(n, len(dataset))
    fig, axes = plt.subplots(1, n, figsize=(1.6 * n, 2.0), squeeze=False)
    for ax, record in zip(axes[0], dataset.select(range(n))):
        ax.imshow(record["image"])
        ax.set_title(record["caption"] or "(no caption)", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_gallery(dataset: datasets.Dataset, qa: pd.DataFrame, captions: pd.DataFrame, n: int = 8, seed: int = 0):
    """Test images with one question each: truth vs prediction (red when wrong), and the caption."""
    import matplotlib.pyplot as plt

    if n == 0 or len(qa) == 0:
        return None
    picks = qa.groupby("image_id", sort=True).sample(1, random_state=seed).sample(
        min(n, qa["image_id"].nunique()), random_state=seed)
    row_of = {image_id: row for row, image_id in enumerate(dataset["image_id"])}
    caption_of = dict(zip(captions["image_id"], captions["prediction"]))
    fig, axes = plt.subplots(1, len(picks), figsize=(2.6 * len(picks), 3.3), squeeze=False)
    for ax, pick in zip(axes[0], picks.itertuples()):
        ax.imshow(dataset[row_of[pick.image_id]]["image"])
        ok = pick.prediction.strip().lower() == pick.answer.lower()
        ax.set_title(f"{pick.question}\ntrue: {pick.answer} · model: {pick.prediction}", fontsize=7,
                     color="black" if ok else "red")
        ax.set_xlabel(f"caption: {caption_of.get(pick.image_id, '')}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig
