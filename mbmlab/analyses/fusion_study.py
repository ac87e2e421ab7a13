"""The fusion study (notebook 06_fusion_study): the fusion strategies trained at one budget and
compared on the same test data.

Every strategy gets the same data, the same stages, epochs, batch size and learning rates, and
so the same optimiser steps and the same supervised target tokens; what differs is how many
decoder positions an example takes (prefix and early fusion place the media in the sequence,
cross-attention places one marker) and which parameters are new.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import metrics as E
from ..artifacts import load_json
from ..data.collect import load_processed
from ..data.tasks import task_examples
from ..training import fused

# the columns of the comparison, in order, and whether larger is better
METRICS = {
    "vqa/exact_match": True, "vqa/exact_match/colour": True, "vqa/exact_match/shape": True,
    "vqa/exact_match/yes/no": True,
    "caption/CIDEr": True, "asr/wer": False, "spoken_vqa/exact_match": True,
    "parameters/trainable": None, "parameters/total": None, "train/seconds": False,
    "generate/tokens_per_second": True, "train/steps": None, "train/target_tokens": None,
    "train/decoder_positions_per_row": None, "train/final_loss": False,
}


def headline_metrics(model, processor, processed, tasks, batch_size: int = 256) -> dict[str, float]:
    """VQA exact match (overall and per question type), caption CIDEr, ASR WER, spoken-VQA exact match
    on the test split, and generation speed (new tokens of the decoded outputs, plus EOS, per
    second of ``generate``)."""
    modalities = model.config.modalities
    pixels, features = fused.split_inputs(processed, processor, ("test",), modalities)
    images = processed.images["test"] if "image" in modalities else None
    speech = processed.speech["test"] if "audio" in modalities else None
    examples = task_examples(images, speech, tasks)
    train = task_examples(processed.images["train"] if images is not None else None,
                          processed.speech["train"] if speech is not None else None, tasks)
    limits = {t: E.max_target_tokens(processor, [e.target for e in train if e.task == t]) for t in tasks}
    start = time.perf_counter()
    predictions = E.generate(model, processor, examples, pixels.get("test"), features.get("test"),
                             batch_size=batch_size, max_new_tokens=limits, progress=False)
    seconds = time.perf_counter() - start
    new_tokens = sum(len(ids) for ids in processor.target_ids(predictions))
    metrics = {"generate/tokens_per_second": new_tokens / seconds}
    present = {e.task for e in examples}
    if "vqa" in present:
        qa = E.predictions_frame(examples, predictions, "vqa", images, speech)
        metrics |= {f"vqa/{k}": v for k, v in E.exact_match_by_type(qa).items()}
    if "caption" in present:
        captions = E.predictions_frame(examples, predictions, "caption", images, speech)
        references = {r.image_id: [r.answer] for r in captions.itertuples()}
        scores = E.caption_metrics(references, dict(zip(captions["image_id"], captions["prediction"])))
        metrics["caption/CIDEr"] = scores["CIDEr"]
    if "asr" in present:
        asr = E.predictions_frame(examples, predictions, "asr", images, speech)
        metrics["asr/wer"] = E.error_rates(list(asr["answer"]), list(asr["prediction"]))["wer"]
    if "spoken_vqa" in present:
        spoken = E.predictions_frame(examples, predictions, "spoken_vqa", images, speech)
        metrics["spoken_vqa/exact_match"] = E.exact_match_by_type(spoken)["exact_match"]
    return metrics


def budget(train_set: fused.TaskUnits) -> dict[str, float]:
    """Target tokens (with EOS) per pass over the training set, and decoder positions per row."""
    rows = [row for unit in train_set.rows for row in unit]
    targets = sum(len(t) for _, _, _, t in rows)
    positions = sum(len(p) + len(t) for _, _, p, t in rows)
    return {"target_tokens_per_epoch": targets, "decoder_positions_per_row": positions / len(rows)}


def train_and_evaluate(run: Path, values: dict, out: Path | None = None) -> tuple[dict, pd.DataFrame]:
    """03_fuse and the headline of 04_evaluate for one setting (``values`` as 03_fuse takes them,
    plus ``eval_batch_size``), without checkpoints; the model is saved to ``out`` when given.
    Returns (the row of the comparison, the training loss history)."""
    torch.manual_seed(values["seed"])
    prepared = fused.prepare(run, values)
    model = prepared.model
    plan = fused.stages(values["fuse_stage1_epochs"], values["fuse_stage1_learning_rate"], values["fuse_epochs"],
                        values["fuse_learning_rate"], values["fuse_train_parts"])
    counts = fused.parameter_counts(model, plan[-1].parts).set_index("part")
    start = time.perf_counter()
    trainers = fused.train_stages(model, prepared.train_set, prepared.collator, plan,
                                  Path(run) / "checkpoints" / "fusion_study", batch_size=values["fuse_batch_images"],
                                  seed=values["seed"], bf16=values["bf16"], save_strategy="no")
    seconds = time.perf_counter() - start
    history = fused.history(trainers)
    spent = budget(prepared.train_set)
    epochs = sum(stage.epochs for stage in plan)
    row = {"fusion": values["fusion"], "seed": values["seed"],
           "parameters/trainable": float(counts.loc["total", "trainable"]),
           "parameters/total": float(counts.loc["total", "parameters"]), "train/seconds": seconds,
           "train/steps": float(sum(t.state.global_step for t in trainers.values())),
           "train/target_tokens": float(spent["target_tokens_per_epoch"] * epochs),
           "train/decoder_positions_per_row": spent["decoder_positions_per_row"],
           "train/final_loss": float(history["loss"].dropna().iloc[-1])}
    processed = load_processed(load_json(run, "dataset.json")["path"])
    row |= headline_metrics(model, prepared.processor, processed, prepared.tasks, values["eval_batch_size"])
    if out is not None:
        model.save_pretrained(out)
        prepared.processor.save_pretrained(out)
    return row, history.assign(fusion=values["fusion"], seed=values["seed"])


def metric_columns(rows: pd.DataFrame) -> list[str]:
    """The comparison's metrics present in ``rows``: VQA exact match, then every question type the
    data has, then the rest of ``METRICS`` in order."""
    types = sorted(c for c in rows.columns if c.startswith("vqa/exact_match/"))
    return list(dict.fromkeys(c for c in ["vqa/exact_match", *types, *METRICS] if c in rows.columns))


def higher_is_better(metric: str) -> bool | None:
    """True or False for a quality or cost metric; None for a budget figure (parameters, steps)."""
    if metric.startswith("vqa/exact_match"):
        return True
    return METRICS.get(metric)


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per strategy: each metric's mean over seeds, and its standard deviation (ddof 1;
    NaN with one seed) as ``<metric> std``."""
    columns = metric_columns(rows)
    grouped = rows.groupby("fusion", sort=False)[columns]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    out = pd.concat([mean, std.add_suffix(" std")], axis=1)
    out.insert(0, "seeds", rows.groupby("fusion", sort=False).size())
    return out


def findings(summary: pd.DataFrame) -> list[str]:
    """Sentences that say what the comparison shows, from the numbers: per quality metric the
    best strategy, its margin over the runner-up and whether the margin exceeds the seeds'
    spread (the larger of the two strategies' standard deviations)."""
    lines = []
    for metric in [c for c in summary.columns if not c.endswith(" std") and c != "seeds"]:
        higher = higher_is_better(metric)
        if higher is None or summary[metric].isna().all():
            continue
        ranked = summary[metric].sort_values(ascending=not higher).dropna()
        best = ranked.index[0]
        if len(ranked) < 2:
            lines.append(f"{metric}: only {best} was measured ({ranked.iloc[0]:.4g}).")
            continue
        second = ranked.index[1]
        margin = abs(ranked.iloc[0] - ranked.iloc[1])
        tied = list(ranked.index[ranked == ranked.iloc[0]])
        if len(tied) > 1:
            lines.append(f"{metric}: {' and '.join(tied)} tie at {ranked.iloc[0]:.4g}.")
            continue
        spread = summary.loc[[best, second], f"{metric} std"].max()
        if np.isnan(spread):
            verdict = "one seed each, so no spread was measured"
        elif margin > 2 * spread:
            verdict = f"more than twice the seeds' spread ({spread:.3g})"
        else:
            verdict = f"within twice the seeds' spread ({spread:.3g}): not a clear difference"
        lines.append(f"{metric}: {best} {ranked.iloc[0]:.4g}, then {second} {ranked.iloc[1]:.4g} "
                     f"(margin {margin:.3g}; {verdict}).")
    return lines


TASK_METRICS = ("vqa/exact_match", "caption/CIDEr", "asr/wer", "spoken_vqa/exact_match")  # one per task


def ranks(summary: pd.DataFrame, metrics=TASK_METRICS) -> pd.DataFrame:
    """Each strategy's rank (1 = best) on each task's headline metric that was measured, and the
    mean rank over them."""
    shown = [m for m in metrics if m in summary.columns and summary[m].notna().any()]
    table = pd.DataFrame({m: summary[m].rank(ascending=not higher_is_better(m), method="min") for m in shown})
    table["mean rank"] = table.mean(axis=1)
    return table


def choose(summary: pd.DataFrame, metrics=TASK_METRICS) -> str:
    """The strategy the study supports: the best mean rank over the tasks' headline metrics (VQA
    exact match, caption CIDEr, WER, spoken-VQA exact match — one vote per task, so no task counts
    twice), ties broken by training time."""
    table = ranks(summary, metrics).join(summary["train/seconds"])
    return str(table.sort_values(["mean rank", "train/seconds"]).index[0])


def plot_curves(histories: pd.DataFrame):
    """Training loss against step, one line per strategy (mean over seeds)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    losses = histories.dropna(subset=["loss"])
    for fusion, group in losses.groupby("fusion", sort=False):
        curve = group.groupby("step")["loss"].mean()
        ax.plot(curve.index, curve.values, label=fusion)
    # the end of stage 1: its last logged step
    boundary = histories.loc[histories["stage"] == "stage1", "step"].max() if "stage" in histories else None
    if boundary is not None and not np.isnan(boundary):
        ax.axvline(boundary, color="grey", lw=0.8, ls="--")
        ax.text(boundary, ax.get_ylim()[1], " stage 2", va="top", fontsize=8, color="grey")
    ax.set(xlabel="optimiser step", ylabel="training loss", yscale="log",
           title="fusion strategies at one budget: training loss")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_metrics(rows: pd.DataFrame, metrics=("vqa/exact_match", "caption/CIDEr", "asr/wer", "spoken_vqa/exact_match")):
    """One panel per metric: each strategy's mean with its seeds as dots."""
    import matplotlib.pyplot as plt

    shown = [m for m in metrics if m in rows.columns]
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3), squeeze=False)
    order = list(dict.fromkeys(rows["fusion"]))
    for ax, metric in zip(axes[0], shown):
        means = rows.groupby("fusion")[metric].mean().reindex(order)
        ax.bar(range(len(order)), means.values, color="#9ab")
        for i, fusion in enumerate(order):
            values = rows.loc[rows["fusion"] == fusion, metric]
            ax.plot([i] * len(values), values, "k.", ms=5)
        ax.set_xticks(range(len(order)), order, rotation=20)
        ax.set_title(metric + (" (lower is better)" if higher_is_better(metric) is False else ""), fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- 06_fusion_study's sections

def run_all(run: Path, params: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every strategy of ``study_fusions`` × ``study_seeds`` seeds trained and evaluated at 03's
    budget, saved under ``run/fusion_study/<fusion>-seed<seed>``. Returns (one row per training,
    their loss histories)."""
    rows, histories = [], []
    for fusion in params["study_fusions"]:
        for k in range(params["study_seeds"]):
            values = dict(params, fusion=fusion, seed=params["seed"] + k)
            row, history = train_and_evaluate(run, values, out=Path(run) / "fusion_study" / f"{fusion}-seed{values['seed']}")
            rows.append(row)
            histories.append(history)
            print(f"{fusion} seed {values['seed']}: trained in {row['train/seconds']:.1f} s, "
                  f"VQA exact match {row.get('vqa/exact_match', float('nan')):.4f}")
    return pd.DataFrame(rows), pd.concat(histories, ignore_index=True)


def budget_lines(rows: pd.DataFrame) -> list[str]:
    """The check that every strategy spent the same budget (it raises if not), and what differs."""
    spent = rows.groupby("fusion", sort=False)[["train/steps", "train/target_tokens"]].agg(["min", "max"])
    if not (spent.xs("min", axis=1, level=1) == spent.xs("max", axis=1, level=1)).all().all() or \
            rows["train/steps"].nunique() != 1 or rows["train/target_tokens"].nunique() != 1:
        raise AssertionError(f"budgets differ:\n{spent}")
    return [f"every strategy: {int(rows['train/steps'].iloc[0])} steps, {int(rows['train/target_tokens'].iloc[0])} "
            "target tokens",
            rows.groupby("fusion", sort=False)[["train/decoder_positions_per_row", "parameters/trainable",
                                                "parameters/total"]].mean().round(1).to_string()]


def comparison_table(summary: pd.DataFrame, rows: pd.DataFrame, seeds: int) -> pd.DataFrame:
    """Metrics (rows) by strategy (columns): the mean over seeds, "mean ± std" with two or more."""
    shown = metric_columns(rows)
    table = summary[["seeds"] + shown].T.round(4)
    if seeds > 1:
        table = table.astype(object)
        for c in shown:
            table.loc[c] = [f"{m:.4g} ± {s:.2g}" for m, s in zip(summary[c], summary[f"{c} std"])]
    return table


def conclusion(summary: pd.DataFrame, rows: pd.DataFrame, seeds: int):
    """(findings as Markdown, the rank table, the metrics to record, fusion_study.json's record)."""
    lines = findings(summary)
    ranking = ranks(summary)
    chosen = choose(summary) if len(ranking.columns) > 1 else None
    text = "\n".join(f"- {line}" for line in lines)
    if chosen is not None:
        text += (f"\n\nBy mean rank over the tasks' headline metrics ({', '.join(ranking.columns[:-1])}; one vote "
                 f"per task, ties broken by training time) the study supports **{chosen}** "
                 f"(mean rank {ranking.loc[chosen, 'mean rank']:.2f}, trained in "
                 f"{summary.loc[chosen, 'train/seconds']:.0f} s).")
    shown = metric_columns(rows)
    metrics = {f"fusion_study/{fusion}/{metric}": value for fusion, values in summary[shown].iterrows()
               for metric, value in values.items() if pd.notna(value)}
    record = {"strategies": list(summary.index), "seeds": seeds, "chosen": chosen, "findings": lines,
              "mean_rank": ranking["mean rank"].to_dict()}
    return text, ranking, metrics, record


def ask_each(run: Path, params: dict, question: str = "what shape is in the image?") -> list[str]:
    """Each saved strategy (seed ``params["seed"]``) asked ``question`` about the first test image
    that has it, loaded through the Auto classes as ``mbmlab ask`` loads it."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from ..metrics.generate import ask

    test = load_processed(load_json(run, "dataset.json")["path"]).images
    test = test["test"] if test is not None else []
    row = next((i for i, questions in enumerate(test["questions"]) if question in questions), None) if len(test) else None
    if row is None:
        return []
    picture, lines = test[row]["image"], []
    truth = test[row]["answers"][test[row]["questions"].index(question)]
    for fusion in params["study_fusions"]:
        folder = Path(run) / "fusion_study" / f"{fusion}-seed{params['seed']}"
        model = AutoModelForImageTextToText.from_pretrained(folder).eval()
        answer = ask(model, AutoProcessor.from_pretrained(folder), image=picture, question=question).text
        lines.append(f"{fusion:>15}: {question} → {answer!r}  (true: {truth!r})")
    return lines
