"""The fusion study (notebook 06_fusion_study): the fusion strategies trained at one budget and
compared on the same test data.

Every strategy gets the same data, the same stages, epochs, batch size and learning rates, and
so the same optimiser steps and the same supervised target tokens; what differs is how many
decoder positions an example takes (prefix and early fusion place the media in the sequence,
cross-attention places one marker) and which parameters are new.

Each strategy is trained with ``study_seeds`` seeds (initialisation and batch order vary, the data
do not); seed k of every strategy is paired. The strategy is **chosen on the validation split**
(mean rank over the tasks' headline metrics, ``validation/…`` columns) and the test split is
reported once. Findings compare strategies on test with the seed-level paired t interval of
``mbmlab.metrics.stats.seed_difference`` and Holm's correction over every comparison made; a
difference is "established" only where the adjusted p < 0.05, and none is with one seed.
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
from ..metrics.generate import generate
from ..training import fused

# the columns of the comparison, in order, and whether larger is better
METRICS = {
    "vqa/exact_match": True, "vqa/exact_match/colour": True, "vqa/exact_match/shape": True,
    "vqa/exact_match/yes/no": True,
    "caption/CIDEr": True, "asr/wer": False, "spoken_vqa/exact_match": True,
    "parameters/trainable": None, "parameters/total": None, "train/seconds": False,
    "generate/tokens_per_second": True, "train/steps": None, "train/target_tokens": None,
    "train/decoder_positions_per_row": None, "train/final_loss": False, "train/kept_epoch": None,
}


def headline_metrics(model, processor, processed, tasks, batch_size: int = 256, split: str = "test") -> dict[str, float]:
    """VQA exact match (overall and per question type), caption CIDEr, ASR WER, spoken-VQA exact match
    on ``split``, and generation speed (new tokens of the decoded outputs, plus EOS, per
    second of ``generate``). The translate tasks are not scored here (04 scores them), so not generated."""
    tasks = [t for t in tasks if t in ("vqa", "caption", "asr", "spoken_vqa")]
    modalities = model.config.modalities
    pixels, features = fused.split_inputs(processed, processor, (split,), modalities)
    images = processed.images[split] if "image" in modalities else None
    speech = processed.speech[split] if "audio" in modalities else None
    examples = task_examples(images, speech, tasks)
    train = task_examples(processed.images["train"] if images is not None else None,
                          processed.speech["train"] if speech is not None else None, tasks)
    limits = {t: E.max_target_tokens(processor, [e.target for e in train if e.task == t]) for t in tasks}
    start = time.perf_counter()
    predictions = generate(model, processor, examples, pixels.get(split), features.get(split),
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
    plan = fused.plan(values)
    counts = fused.parameter_counts(model, plan[-1].parts, plan[-1].keep_reader).set_index("part")
    start = time.perf_counter()
    fused.read_stage(prepared, values)
    trainers = fused.train_stages(model, prepared.train_set, prepared.collator, plan,
                                  Path(run) / "checkpoints" / "fusion_study", batch_size=values["fuse_batch_images"],
                                  seed=values["seed"], bf16=values["bf16"], save_strategy="no",
                                  eval_set=prepared.sets["validation"], keep_best=values.get("fuse_keep_best_epoch", False))
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
           "train/final_loss": float(history["loss"].dropna().iloc[-1]),
           # stage 2's epoch kept on validation (fuse_keep_best_epoch); NaN: its last
           "train/kept_epoch": trainers.choice.kept["epoch"] if trainers.choice else float("nan")}
    processed = load_processed(load_json(run, "dataset.json")["path"])
    row |= headline_metrics(model, prepared.processor, processed, prepared.tasks, values["eval_batch_size"])
    chosen_on = headline_metrics(model, prepared.processor, processed, prepared.tasks, values["eval_batch_size"],
                                 split="validation")  # what the choice of a strategy may read
    row |= {f"validation/{k}": v for k, v in chosen_on.items() if k in METRICS or k.startswith("vqa/exact_match")}
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
    metric = metric.removeprefix("validation/")
    if metric.startswith("vqa/exact_match"):
        return True
    return METRICS.get(metric)


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per strategy: each metric's mean over seeds, and its standard deviation (ddof 1;
    NaN with one seed) as ``<metric> std``; the ``validation/…`` columns (what the choice reads) too."""
    columns = metric_columns(rows) + [c for c in rows.columns if c.startswith("validation/")]
    grouped = rows.groupby("fusion", sort=False)[columns]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    out = pd.concat([mean, std.add_suffix(" std")], axis=1)
    out.insert(0, "seeds", rows.groupby("fusion", sort=False).size())
    return out


def comparisons(rows: pd.DataFrame) -> pd.DataFrame:
    """Every pair of strategies on every quality metric of the test split: the difference of the
    seed means (first − second) with the paired t interval over seeds (seed k of both strategies
    paired; ``stats.seed_difference``), its p-value and Holm's adjusted p over all rows. With one
    seed per strategy there is no interval: p is NaN and nothing can be established."""
    from ..metrics.stats import holm, seed_difference

    out = []
    strategies = list(dict.fromkeys(rows["fusion"]))
    for metric in metric_columns(rows):
        if higher_is_better(metric) is None or rows[metric].isna().all():
            continue
        for i, a in enumerate(strategies):
            for b in strategies[i + 1:]:
                pair = rows[rows["fusion"].isin([a, b])].pivot_table(index="seed", columns="fusion", values=metric).dropna()
                entry = {"metric": metric, "first": a, "second": b, "seeds": len(pair),
                         "difference": float(pair[a].mean() - pair[b].mean()) if len(pair) else float("nan"),
                         "ci95_low": float("nan"), "ci95_high": float("nan"), "p_value": float("nan")}
                if len(pair) >= 2:
                    entry |= {k: v for k, v in seed_difference(pair[a], pair[b]).items() if k != "seeds"}
                out.append(entry)
    table = pd.DataFrame(out, columns=["metric", "first", "second", "seeds", "difference", "ci95_low", "ci95_high",
                                       "p_value"])
    tested = table["p_value"].notna()
    table["p_holm"] = float("nan")
    if tested.any():
        table.loc[tested, "p_holm"] = holm(table.loc[tested, "p_value"])
    table["established"] = table["p_holm"] < 0.05
    return table


def findings(rows: pd.DataFrame) -> list[str]:
    """One sentence per quality metric: the strategies in order of their seed mean on test, and
    each pairwise difference with its interval over seeds — "established" only where the
    Holm-adjusted p < 0.05, "not established" otherwise (always with one seed)."""
    table = comparisons(rows)
    summary = summarise(rows)
    lines = []
    for metric, part in table.groupby("metric", sort=False):
        higher = higher_is_better(metric)
        order = summary[metric].sort_values(ascending=not higher).dropna()
        ranking = ", ".join(f"{name} {value:.4g}" for name, value in order.items())
        pairs = []
        for r in part.itertuples():
            if np.isnan(r.p_value):
                pairs.append(f"{r.first} − {r.second} {r.difference:+.3g} ({r.seeds} seed: not established)")
            else:
                verdict = "established" if r.established else "not established"
                pairs.append(f"{r.first} − {r.second} {r.difference:+.3g} [{r.ci95_low:+.3g}, {r.ci95_high:+.3g}] "
                             f"over {r.seeds} seeds, Holm p {r.p_holm:.3g}: {verdict}")
        lines.append(f"{metric} (test): {ranking}; " + "; ".join(pairs) + ".")
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
    twice), ties broken by training time. 06 passes the ``validation/…`` columns: the choice never
    reads the test split."""
    table = ranks(summary, metrics).join(summary["train/seconds"])
    return str(table.sort_values(["mean rank", "train/seconds"]).index[0])


VALIDATION_METRICS = tuple(f"validation/{m}" for m in TASK_METRICS)


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
    """(findings as Markdown, the rank table on validation, the metrics to record, fusion_study.json's record)."""
    lines = findings(rows)
    table = comparisons(rows)
    ranking = ranks(summary, VALIDATION_METRICS)
    chosen = choose(summary, VALIDATION_METRICS) if len(ranking.columns) > 1 else None
    text = "\n".join(f"- {line}" for line in lines)
    if chosen is not None:
        beats = table[((table["first"] == chosen) | (table["second"] == chosen)) & table["established"]
                      & table["metric"].isin(TASK_METRICS)]
        text += (f"\n\nChosen on the **validation** split by mean rank over the tasks' headline metrics "
                 f"({', '.join(c.removeprefix('validation/') for c in ranking.columns[:-1])}; one vote per task, ties "
                 f"broken by training time): **{chosen}** (mean rank {ranking.loc[chosen, 'mean rank']:.2f}, trained in "
                 f"{summary.loc[chosen, 'train/seconds']:.0f} s). "
                 + (f"On test, {len(beats)} of its differences on the tasks' headline metrics are established "
                    "(above)." if len(beats) else
                    "On test, none of its differences on the tasks' headline metrics is established: the study "
                    "does not show it better than the others, only not worse on this evidence."))
    shown = metric_columns(rows)
    metrics = {f"fusion_study/{fusion}/{metric}": value for fusion, values in summary[shown].iterrows()
               for metric, value in values.items() if pd.notna(value)}
    record = {"strategies": list(summary.index), "seeds": seeds, "chosen": chosen, "chosen_on": "validation",
              "findings": lines, "mean_rank": ranking["mean rank"].to_dict(),
              "comparisons": table.to_dict("records")}
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
