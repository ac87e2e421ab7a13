"""The data card: what is in each split, as numbers and plots."""
from __future__ import annotations

import textwrap
from collections import Counter

import datasets
import pandas as pd


def qa_frame(dataset: datasets.Dataset) -> pd.DataFrame:
    """One row per question: image_id, source, question, answer, question_type, colour, shape."""
    cols = dataset.select_columns(["image_id", "source", "questions", "answers", "question_types", "colour", "shape"])
    rows = []
    for r in cols:
        for q, a, t in zip(r["questions"], r["answers"], r["question_types"], strict=True):
            rows.append({"image_id": r["image_id"], "source": r["source"], "question": q, "answer": a,
                         "question_type": t, "colour": r["colour"], "shape": r["shape"]})
    return pd.DataFrame(rows, columns=["image_id", "source", "question", "answer", "question_type", "colour", "shape"])


def objects_frame(dataset: datasets.Dataset) -> pd.DataFrame:
    """One row per object of every image of an images split (``image_id``, ``source``, ``object``
    (its index in the image), ``shape``, ``colour``, ``size``; "" where a source does not say), read
    from the dataset's own ``objects`` column, so multi-object scenes give all their objects and any
    shape or colour a source draws is kept. The data card, the bias audit and the bias study all
    read objects through it."""
    columns = ["image_id", "source", "object", "shape", "colour", "size"]
    return pd.DataFrame([{"image_id": r["image_id"], "source": r["source"], "object": k,
                          **{a: o[a] or "" for a in ("shape", "colour", "size")}}
                         for r in dataset.select_columns(["image_id", "source", "objects"])
                         for k, o in enumerate(r["objects"] or [])], columns=columns)


def conditional_probabilities(images: datasets.DatasetDict, pairs: dict[str, str],
                              source: str = "scenes") -> pd.DataFrame:
    """Realised P(colour | shape) per split for each ``shape → colour`` pair, over the objects of
    ``source`` (the bias knob acts on the scenes source only)."""
    rows = []
    for split, data in images.items():
        objects = objects_frame(data)
        objects = objects[objects["source"] == source]
        for shape, colour in pairs.items():
            of_shape = objects[objects["shape"] == shape]
            rows.append({"pair": f"{shape}:{colour}", "split": split, "objects": len(of_shape),
                         "P(colour | shape)": round(float((of_shape["colour"] == colour).mean()), 4)
                         if len(of_shape) else float("nan")})
    return pd.DataFrame(rows)


def speech_summary(clips: datasets.DatasetDict) -> pd.DataFrame:
    """Clips and duration per split and voice."""
    frames = [clips[s].select_columns(["voice", "engine", "accent", "gender", "duration"]).to_pandas().assign(split=s)
              for s in clips]
    frame = pd.concat(frames, ignore_index=True)
    return (frame.groupby(["voice", "engine", "accent", "gender"])
            .agg(clips=("duration", "size"), mean_seconds=("duration", "mean"), max_seconds=("duration", "max"))
            .round(3).reset_index())


def data_card(processed, bias_pairs: dict[str, str] | None = None) -> dict:
    """Numbers for each split: images, questions, captions, types, answers, sources; speech; drops."""
    card = {"splits": {}, "drops": processed.drops.counts(), "drops_by_source": processed.drops.counts_by_source(),
            "changes": processed.drops.change_counts()}
    for name, split in (processed.images or {}).items():
        qa = qa_frame(split)
        card["splits"][name] = {
            "images": len(split),
            "questions": len(qa),
            "captions": sum(1 for c in split["caption"] if c),
            "sources": dict(sorted(Counter(split["source"]).items())),
            "question_types": dict(sorted(Counter(qa["question_type"]).items())),
            "answers": dict(sorted(Counter(qa["answer"]).items())),
        }
    if processed.speech is not None:
        card["speech"] = {name: {"clips": len(split), "seconds": round(float(sum(split["duration"])), 2),
                                 "voices": dict(sorted(Counter(split["voice"]).items()))}
                          for name, split in processed.speech.items()}
    if bias_pairs and processed.images is not None and "scenes" in card["splits"].get("train", {}).get("sources", {}):
        card["bias"] = conditional_probabilities(processed.images, bias_pairs).to_dict(orient="records")
    return card


def counts_table(card: dict) -> pd.DataFrame:
    return pd.DataFrame({name: {k: v for k, v in s.items() if isinstance(v, int)}
                         for name, s in card["splits"].items()})


def plot_answer_distribution(card: dict):
    """Share of each answer per split; None when the data has no questions."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = pd.DataFrame([
        {"split": name, "answer": answer, "share": n / split["questions"]}
        for name, split in card["splits"].items() for answer, n in split["answers"].items()
    ])
    if frame.empty:
        return None
    fig, ax = plt.subplots(figsize=(9, 3.5))
    sns.barplot(frame, x="answer", y="share", hue="split", ax=ax)
    ax.set_title("Answer distribution per split")
    ax.set_ylabel("share of questions")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig


def plot_examples(dataset: datasets.Dataset, n: int = 8, per_row: int = 6, seed: int = 0):
    """A grid of images (a seeded sample, every source represented) with their captions."""
    import textwrap

    import matplotlib.pyplot as plt

    frame = pd.DataFrame({"source": dataset["source"]}).reset_index()
    per_source = -(-n // frame["source"].nunique())
    picks = (frame.groupby("source", sort=True).sample(frac=1, random_state=seed)
             .groupby("source", sort=True).head(per_source)["index"].tolist()[:n])
    rows = -(-len(picks) // per_row)
    fig, axes = plt.subplots(rows, per_row, figsize=(1.9 * per_row, 2.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, picks):
        record = dataset[int(index)]
        ax.imshow(record["image"])
        ax.set_title("\n".join(textwrap.wrap(record["caption"] or "(no caption)", 24)), fontsize=7)
    fig.tight_layout()
    return fig


def plot_attribute_cooccurrence(images: datasets.DatasetDict, source: str | None = None):
    """Heatmaps of P(colour | shape) over the objects (of ``source``, or all), one per split."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, len(images), figsize=(4.2 * len(images), 3.6), squeeze=False)
    for ax, (split, data) in zip(axes[0], images.items()):
        objects = objects_frame(data)
        if source is not None:
            objects = objects[objects["source"] == source]
        if objects.empty:
            ax.set_axis_off()
            continue
        from .attributes import COLOURS, SHAPES

        table = pd.crosstab(objects["shape"], objects["colour"], normalize="index")
        table = table.reindex(index=[s for s in SHAPES if s in table.index] + sorted(set(table.index) - set(SHAPES)),
                              columns=list(COLOURS) + sorted(set(table.columns) - set(COLOURS)), fill_value=0.0)
        sns.heatmap(table, ax=ax, vmin=0, vmax=max(0.5, float(table.values.max())), cmap="viridis",
                    annot=len(table.columns) <= 8, fmt=".2f", annot_kws={"fontsize": 6}, cbar=False)
        ax.set_title(f"{source or 'all sources'} · {split}: P(colour | shape)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_durations(clips: datasets.DatasetDict):
    """Clip duration per voice (all splits)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = pd.concat([clips[s].select_columns(["voice", "duration"]).to_pandas() for s in clips])
    fig, ax = plt.subplots(figsize=(9, 3.2))
    sns.boxplot(frame, x="voice", y="duration", ax=ax, color="#9ecae1")
    ax.set_ylabel("seconds")
    ax.set_title("Clip duration per voice")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def plot_spectrogram(clip: dict):
    """Log-mel spectrogram (the Whisper feature extractor's, the audio encoder's input) of one clip."""
    import math

    import matplotlib.pyplot as plt
    from transformers import WhisperFeatureExtractor

    samples = clip["audio"].get_all_samples()
    seconds = samples.data.shape[-1] / samples.sample_rate
    extractor = WhisperFeatureExtractor(chunk_length=max(1, math.ceil(seconds)))
    mel = extractor(samples.data[0].numpy(), sampling_rate=samples.sample_rate, return_tensors="np").input_features[0]
    mel = mel[:, : math.ceil(samples.data.shape[-1] / extractor.hop_length)]  # drop the padding
    fig, ax = plt.subplots(figsize=(7, 2.6))
    image = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma",
                      extent=(0, mel.shape[1] * extractor.hop_length / samples.sample_rate, 0, mel.shape[0]))
    ax.set_xlabel("seconds")
    ax.set_ylabel("mel bin")
    ax.set_title(f"{clip['voice']}: \u201c{clip['transcript']}\u201d", fontsize=9)
    fig.colorbar(image, ax=ax, label="log-mel")
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
    fig, axes = plt.subplots(1, len(picks), figsize=(2.6 * len(picks), 3.6), squeeze=False)
    for ax, pick in zip(axes[0], picks.itertuples()):
        ax.imshow(dataset[row_of[pick.image_id]]["image"])
        ok = pick.prediction.strip().lower() == pick.answer.lower()
        ax.set_title(f"{pick.question}\ntrue: {pick.answer} · model: {pick.prediction}", fontsize=7,
                     color="black" if ok else "red")
        shown = caption_of[pick.image_id] if pick.image_id in caption_of else '— (no reference, not generated)'
        ax.set_xlabel(textwrap.fill(f"caption: {shown}", 36), fontsize=7)  # a 3-object caption spans 2–3 lines
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def _order() -> dict[str, tuple]:
    from .attributes import COLOURS, SHAPES, SIZES

    return {"shape": SHAPES, "colour": COLOURS, "size": tuple(SIZES)}


def plot_attribute_distribution(images: datasets.DatasetDict):
    """Share of objects per shape, colour and size, and of images per object count, per split
    (over the sources that know their objects)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    objects = pd.concat([objects_frame(data).assign(split=split) for split, data in images.items()])
    counts = pd.concat([pd.DataFrame({"split": split, "objects": [len(o) for o in data["objects"] if o]})
                        for split, data in images.items()])
    panels = [("shape", objects), ("colour", objects), ("size", objects[objects["size"] != ""]), ("objects", counts)]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2), gridspec_kw={"width_ratios": [4, 8, 2, 3]})
    for ax, (column, frame) in zip(axes, panels):
        if frame.empty:
            ax.set_axis_off()
            continue
        shares = (frame.groupby("split")[column].value_counts(normalize=True).rename("share").reset_index())
        known = _order().get(column, ())
        order = sorted(shares[column].unique(), key=lambda v: (known.index(v) if v in known else len(known), str(v)))
        sns.barplot(shares, x=column, y="share", hue="split", hue_order=list(images), order=order, ax=ax,
                    legend=column == "shape")
        if column == "shape":
            ax.legend(fontsize=7, loc="lower left", framealpha=0.9)
        ax.set_title(f"{column} (share of {'images' if column == 'objects' else 'objects'})", fontsize=9)
        ax.tick_params(axis="x", rotation=45 if column == "colour" else 0)
    fig.tight_layout()
    return fig
