"""Bias audit: attributes read from the data, co-occurrence in data and predictions, accuracy per
group, and the bias-amplification measures of Zhao et al. (2017) and Wang & Russakovsky (2021)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..data.attributes import COLOURS, SHAPES


def vocabulary(*frames: pd.DataFrame, column: str) -> tuple[str, ...]:
    """The values of ``column`` the frames hold, in the shared vocabulary's order (mbmlab.data.attributes),
    values it does not know appended alphabetically."""
    seen = {v for f in frames for v in f[column] if v}
    known = COLOURS if column == "colour" else SHAPES if column == "shape" else ()
    return tuple(v for v in known if v in seen) + tuple(sorted(seen - set(known)))


def parse_caption(text: str, colours=COLOURS, shapes=SHAPES) -> list[tuple[str, str]]:
    """The (colour, shape) objects a caption names, in order: each shape word closes an object
    with the last colour word since the previous shape ("" when none). "a large red circle and a
    small blue star" → [("red", "circle"), ("blue", "star")]."""
    objects, colour = [], ""
    for word in text.lower().replace(",", " ").split():
        if word in colours:
            colour = word
        elif word in shapes:
            objects.append((colour, word))
            colour = ""
    return objects


def cooccurrence(frame: pd.DataFrame, rows: str = "colour", cols: str = "shape",
                 normalize: bool = True, index=None, columns=None) -> pd.DataFrame:
    """Counts of (rows, cols) pairs; with ``normalize`` each row sums to 1: P(cols | rows).

    Rows and columns with empty values (attribute unknown) are left out. ``index`` / ``columns``
    fix the values shown (give the same to compare tables); by default those the frame holds.
    """
    known = frame[(frame[rows] != "") & (frame[cols] != "")]
    table = pd.crosstab(known[rows], known[cols])
    index = list(index) if index is not None else list(vocabulary(known, column=rows))
    columns = list(columns) if columns is not None else list(vocabulary(known, column=cols))
    table = table.reindex(index=index, columns=columns, fill_value=0)
    if normalize:
        totals = table.sum(axis=1).replace(0, float("nan"))
        table = table.div(totals, axis=0)
    return table


def joint_distribution(frame: pd.DataFrame, rows: str = "colour", cols: str = "shape", index=None,
                       columns=None) -> pd.DataFrame:
    """P(rows, cols) over the records where both attributes are known (all cells sum to 1)."""
    counts = cooccurrence(frame, rows, cols, normalize=False, index=index, columns=columns)
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


# ---------------------------------------------------------------- bias amplification

def bias_amplification(train_counts, predicted_counts) -> float:
    """Bias amplification of Zhao, Wang, Yatskar, Ordonez & Chang, "Men Also Like Shopping"
    (EMNLP 2017), eq. 1.

    ``train_counts`` and ``predicted_counts`` are |outputs| × |groups| co-occurrence counts (the
    training truth; the model's predictions on the test items). With the bias score
    b(o, g) = c(o, g) / Σ_g' c(o, g'):

        BA = 1/|O| Σ_o Σ_g 1[b_train(o, g) > 1/|G|] · (b_pred(o, g) − b_train(o, g))

    Positive: the predictions lean further towards the groups the training data favoured.
    Outputs without training or predicted co-occurrences have no bias score; they are left out
    with a warning that names them.
    """
    train = np.asarray(train_counts, dtype=float)
    predicted = np.asarray(predicted_counts, dtype=float)
    if train.shape != predicted.shape or train.ndim != 2:
        raise ValueError(f"counts must be two |outputs| × |groups| arrays of one shape; got {train.shape} and "
                         f"{predicted.shape}")
    usable = (train.sum(1) > 0) & (predicted.sum(1) > 0)
    if not usable.all():
        warnings.warn(f"bias_amplification: outputs {np.flatnonzero(~usable).tolist()} have no training or no "
                      f"predicted co-occurrences and are left out", stacklevel=2)
    if not usable.any():
        raise ValueError("no output has both training and predicted co-occurrences")
    b_train = train[usable] / train[usable].sum(1, keepdims=True)
    b_pred = predicted[usable] / predicted[usable].sum(1, keepdims=True)
    favoured = b_train > 1.0 / train.shape[1]
    return float(np.mean(np.sum(favoured * (b_pred - b_train), axis=1)))


def directional_bias_amplification(A_train, T_train, A_test, T_test, predicted, direction: str = "A->T") -> float:
    """Directional bias amplification of Wang & Russakovsky, "Directional Bias Amplification"
    (ICML 2021), eq. 2.

    ``A_*`` are N × |A| binary attribute arrays, ``T_*`` N × |T| binary task-label arrays;
    ``predicted`` is the model's T̂ on the test items (``"A->T"``) or its Â (``"T->A"``).
    From the training data, y_at = 1[P(A_a=1, T_t=1) > P(A_a=1)·P(T_t=1)]; on the test data,

        A→T: Δ_at = P(T̂_t=1 | A_a=1) − P(T_t=1 | A_a=1)
        T→A: Δ_at = P(Â_a=1 | T_t=1) − P(A_a=1 | T_t=1)

        BiasAmp = 1/(|A||T|) Σ_a Σ_t [ y_at·Δ_at + (1 − y_at)·(−Δ_at) ]

    Positive: the predictions exaggerate the training correlations (more of the pairs that
    co-occurred, fewer of those that did not). Pairs whose conditioning event never happens in the
    test data have no Δ and are left out with a warning.
    """
    A_train, T_train, A_test, T_test, predicted = (np.asarray(x, dtype=float) for x in
                                                   (A_train, T_train, A_test, T_test, predicted))
    if direction not in ("A->T", "T->A"):
        raise ValueError(f"direction must be 'A->T' or 'T->A', not {direction!r}")
    n = len(A_train)
    joint = A_train.T @ T_train / n  # P(A_a=1, T_t=1)
    y = (joint > np.outer(A_train.mean(0), T_train.mean(0))).astype(float)
    if direction == "A->T":
        if predicted.shape != T_test.shape:
            raise ValueError(f"A->T needs predicted task labels shaped like T_test {T_test.shape}, got {predicted.shape}")
        given = A_test.sum(0)[:, None]  # |A| × 1: items with A_a = 1
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = (A_test.T @ predicted - A_test.T @ T_test) / given
    else:
        if predicted.shape != A_test.shape:
            raise ValueError(f"T->A needs predicted attributes shaped like A_test {A_test.shape}, got {predicted.shape}")
        given = T_test.sum(0)[None, :]  # 1 × |T|: items with T_t = 1
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = (predicted.T @ T_test - A_test.T @ T_test) / given
    defined = np.isfinite(delta)
    if not defined.all():
        warnings.warn(f"directional_bias_amplification: {int((~defined).sum())} (a, t) pairs have no test item to "
                      f"condition on and are left out", stacklevel=2)
    if not defined.any():
        raise ValueError("no (a, t) pair has a test item to condition on")
    terms = y * delta + (1 - y) * (-delta)
    return float(terms[defined].mean())


def one_hot(values, vocabulary) -> np.ndarray:
    """N × |vocabulary| binary array; a value outside the vocabulary gives an all-zero row."""
    index = {v: i for i, v in enumerate(vocabulary)}
    out = np.zeros((len(values), len(vocabulary)))
    for row, value in enumerate(values):
        if value in index:
            out[row, index[value]] = 1.0
    return out


def counts(outputs, groups, output_vocabulary, group_vocabulary) -> np.ndarray:
    """|outputs| × |groups| co-occurrence counts of paired per-item values."""
    return one_hot(outputs, output_vocabulary).T @ one_hot(groups, group_vocabulary)


def with_interval(name: str, statistic, n_items: int, seed: int = 0, clusters=None) -> dict[str, float]:
    """``statistic(indices)`` on all items and its percentile-bootstrap 95% interval, as ``name``,
    ``name/ci95_low``, ``name/ci95_high``; ``clusters`` (one label per item: the test image a
    question asks about) are what the bootstrap draws, whole (None: the items one by one)."""
    from ..metrics import bootstrap
    from ..metrics.stats import cluster_resamples

    value = statistic(np.arange(n_items))
    if not np.isfinite(value):
        warnings.warn(f"{name} is undefined on these test items (see the measure's definition); not recorded",
                      stacklevel=2)
        return {}
    draws = cluster_resamples(np.arange(n_items) if clusters is None else clusters, 200, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resamples that miss a rare pair leave it out, as the full value says
        values = np.array([statistic(idx) for idx in draws])
    defined = np.isfinite(values)  # a resample can miss every item that defines the measure
    out = bootstrap.with_interval(name, value, bootstrap.interval(values[defined]))
    if not defined.all():
        out[f"{name}/undefined_resamples"] = float((~defined).sum())
    return out


def paired_amplification(train_a: pd.DataFrame, items_a: pd.DataFrame, train_b: pd.DataFrame,
                         items_b: pd.DataFrame, shapes, colours, name: str, seed: int = 0) -> dict[str, float]:
    """Directional amplification A→T of model a minus model b on the same test questions (each
    model with its own training objects), with the paired bootstrap interval: the same test images
    drawn for both on each resample. Models trained once each: the interval covers the test
    sample, not training variance."""
    from ..metrics import bootstrap
    from ..metrics.stats import cluster_resamples

    keys = ["kind", "image_id", "shape", "colour"]
    a = items_a[items_a["kind"] == "colour"].reset_index(drop=True)
    b = items_b[items_b["kind"] == "colour"].reset_index(drop=True)
    if len(a) != len(b) or not (a[keys] == b[keys]).all().all():
        raise ValueError("the two models were not asked the same colour questions; a paired difference needs them")
    s, c = a["shape"].to_numpy(), a["colour"].to_numpy()
    pa, pb = a["predicted"].to_numpy(), b["predicted"].to_numpy()
    models = [(one_hot(t["shape"], shapes), one_hot(t["colour"], colours), p) for t, p in ((train_a, pa), (train_b, pb))]

    def difference(i):
        values = [directional_bias_amplification(A, T, one_hot(s[i], shapes), one_hot(c[i], colours),
                                                 one_hot(p[i], colours), "A->T") for A, T, p in models]
        return values[0] - values[1]

    value = difference(np.arange(len(a)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        draws = np.array([difference(idx) for idx in cluster_resamples(a["image_id"], 200, seed)])
    return bootstrap.with_interval(name, float(value), bootstrap.interval(draws[np.isfinite(draws)]))


# ---------------------------------------------------------------- shape × colour items from VQA

def attribute_items(qa: pd.DataFrame, shapes, colours) -> pd.DataFrame:
    """Colour and shape questions as items for the amplification measures: ``kind`` (colour or
    shape), the true ``shape`` and ``colour`` of the object asked about, and ``predicted``, the
    model's answer for the asked attribute. The object asked about is named in the question
    ("what color is the circle?", "what shape is the red object?") or is the image's only object
    (its ``colour`` / ``shape`` columns); questions where neither tells are left out."""
    from ..metrics import normalise_answer

    rows = []
    for r in qa.itertuples():
        if r.question_type not in ("colour", "shape"):
            continue
        words = r.question.lower().replace("?", " ").split()
        if r.question_type == "colour":
            shape = next((w for w in words if w in shapes), "") or r.shape
            colour = normalise_answer(r.answer)
        else:
            colour = next((w for w in words if w in colours), "") or r.colour
            shape = normalise_answer(r.answer)
        if shape and colour:
            rows.append({"kind": r.question_type, "image_id": r.image_id, "shape": shape, "colour": colour,
                         "predicted": normalise_answer(r.prediction)})
    return pd.DataFrame(rows, columns=["kind", "image_id", "shape", "colour", "predicted"])


def amplification_metrics(train_objects: pd.DataFrame, items: pd.DataFrame, shapes, colours,
                          seed: int = 0) -> dict[str, float]:
    """Shape → colour bias amplification of the model's VQA answers, with bootstrap intervals
    that resample the test images (their questions together):

    - ``bias/amplification`` (Zhao et al.): outputs = shapes, groups = colours; training counts from
      the training objects, predicted counts from the colour answers about each shape;
    - ``bias/directional_amplification/A->T`` (Wang & Russakovsky), A = shape, T = colour, from
      the colour questions; ``…/T->A`` from the shape questions (the predicted shape given the colour).
    """
    A_train, T_train = one_hot(train_objects["shape"], shapes), one_hot(train_objects["colour"], colours)
    train_counts = A_train.T @ T_train
    out: dict[str, float] = {}
    colour_q = items[items["kind"] == "colour"].reset_index(drop=True)
    shape_q = items[items["kind"] == "shape"].reset_index(drop=True)
    if len(colour_q):
        s, c, p = colour_q["shape"].to_numpy(), colour_q["colour"].to_numpy(), colour_q["predicted"].to_numpy()
        def zhao(i):  # undefined (NaN) when no shape has a colour answer: a model that names no colour
            predicted = counts(s[i], p[i], shapes, colours)
            usable = (train_counts.sum(1) > 0) & (predicted.sum(1) > 0)
            return bias_amplification(train_counts, predicted) if usable.any() else np.nan

        out |= with_interval("bias/amplification", zhao, len(colour_q), seed, colour_q["image_id"])
        out |= with_interval("bias/directional_amplification/A->T",
                             lambda i: directional_bias_amplification(A_train, T_train, one_hot(s[i], shapes),
                                                                      one_hot(c[i], colours),
                                                                      one_hot(p[i], colours), "A->T"),
                             len(colour_q), seed, colour_q["image_id"])
    if len(shape_q):
        s, c, p = shape_q["shape"].to_numpy(), shape_q["colour"].to_numpy(), shape_q["predicted"].to_numpy()
        out |= with_interval("bias/directional_amplification/T->A",
                             lambda i: directional_bias_amplification(A_train, T_train, one_hot(s[i], shapes),
                                                                      one_hot(c[i], colours),
                                                                      one_hot(p[i], shapes), "T->A"),
                             len(shape_q), seed, shape_q["image_id"])
    return out


# ---------------------------------------------------------------- 05_bias's sections
# Each takes what the run wrote and returns (figure or None, the lines 05 prints, the metrics it records).

def caption_section(captions: pd.DataFrame, objects: dict[str, pd.DataFrame], colours, shapes):
    """P(shape | colour) in the training objects, in the captioned test images' objects and in the
    model's captions of the same images; the share of objects the captions name, and the total
    variation between the captions' and the test objects' joint P(colour, shape)."""
    reference = objects["test"][objects["test"]["image_id"].isin(set(captions["image_id"]))]
    predicted = pd.DataFrame([{"image_id": image_id, "colour": colour, "shape": shape}
                              for image_id, text in zip(captions["image_id"], captions["prediction"])
                              for colour, shape in parse_caption(text, colours, shapes)],
                             columns=["image_id", "colour", "shape"])
    cells = dict(index=colours, columns=shapes)
    tables = {"train data": cooccurrence(objects["train"], **cells),
              "test data (captioned images)": cooccurrence(reference, **cells),
              "model captions (same images)": cooccurrence(predicted, **cells)}
    named = (predicted["colour"] != "") & (predicted["shape"] != "")
    lines = [f"{len(reference)} objects on {len(captions)} captioned test images; the captions name "
             f"{int(named.sum())} objects with a colour and a shape"]
    metrics = {"bias/caption_object_rate": named.sum() / max(len(reference), 1)}
    if named.any() and len(reference):
        distance = total_variation(joint_distribution(predicted, **cells), joint_distribution(reference, **cells))
        metrics["bias/caption_joint_tv_distance"] = distance
        lines.append(f"total variation between the captions' and the test objects' P(colour, shape): {distance:.4f}")
    return plot_cooccurrence(tables, "P(shape | colour), every object"), lines, metrics


def group_accuracy_section(qa: pd.DataFrame):
    """VQA exact match per colour and per shape of the asked-about object (with the majority
    answer's accuracy as the plot's baseline), and the gap between the best and worst group."""
    from ..metrics.vqa import answers_correct

    qa = qa.assign(correct=answers_correct(qa["prediction"], qa["answer"]))
    groups = {group: accuracy_by(qa, group) for group in ("colour", "shape") if (qa[group] != "").any()}
    if not groups:
        return None, ["note: the images carry no colour or shape attributes; accuracy by group is skipped"], {}
    baseline = float(answers_correct(qa["majority"], qa["answer"]).mean())
    gaps = {f"bias/vqa_accuracy_gap/{g}": accuracy_gap(t) for g, t in groups.items()}
    lines = [table.round(4).to_string(index=False) for table in groups.values()]
    lines.append(str({k: round(v, 4) for k, v in gaps.items()}))
    return plot_group_accuracy(groups, baseline), lines, gaps


def amplification_section(qa: pd.DataFrame, train_objects: pd.DataFrame, shapes, colours, seed: int = 0):
    """Bias amplification and directional bias amplification of the VQA answers, with intervals."""
    items = attribute_items(qa, shapes, colours)
    lines = [f"{len(items)} colour and shape questions with a known object ({(items['kind'] == 'colour').sum()} "
             f"colour, {(items['kind'] == 'shape').sum()} shape)"]
    metrics = amplification_metrics(train_objects, items, shapes, colours, seed=seed)
    for name in ("bias/amplification", "bias/directional_amplification/A->T", "bias/directional_amplification/T->A"):
        if name in metrics:
            lines.append(f"{name}: {metrics[name]:+.4f} [{metrics[name + '/ci95_low']:+.4f}, "
                         f"{metrics[name + '/ci95_high']:+.4f}]")
    return None, lines, metrics
