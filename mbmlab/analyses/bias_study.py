"""The controlled bias experiment (notebook 07_bias_study, preset ``bias-study``).

Procedural scenes whose training split makes chosen shape:colour pairs co-occur at a known
strength (``bias_pairs``, P(colour | shape) = strength; validation and test stay balanced); the
fused model trained from the run's 02 models at each strength in ``bias_strengths`` with 03's
parameters; on the balanced test split: VQA exact match, bias amplification (Zhao et al.) and
directional bias amplification both ways (Wang & Russakovsky) with bootstrap intervals, and
counterfactual probes — the same test scene re-rendered with one attribute changed, asking whether
the answer follows the picture or the training prior. A mitigation (``oversample``: training
images of a biased shape repeated so that each of its colours is seen equally often, for the same
number of optimiser steps) is trained at the strongest bias and measured beside it.
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from torch.utils.data import Dataset

from ..data import scenes as S
from ..data.attributes import parse_bias_pairs
from ..data.card import objects_frame
from ..names import MITIGATIONS
from ..training import fused
from . import bias_audit



def dataset_at(values: dict, strength: float, data_root: Path):
    """The scenes dataset of the run's parameters with training bias ``strength`` (built once,
    cached under data/processed/ by its parameters like any 01_collect dataset); with ``speech``
    among the run's sources, its spoken questions too."""
    from ..data.collect import build_dataset

    sources = ["scenes"] + (["speech"] if "speech" in values["sources"] else [])  # spoken questions about the scenes
    return build_dataset(dict(values, sources=sources, bias_strength=float(strength)), data_root, progress=False)


class Oversampled(Dataset):
    """``TaskUnits`` with some units repeated (``repeats[i]`` copies of unit i), lengths kept for
    the length-grouped sampler."""

    def __init__(self, units: fused.TaskUnits, repeats: list[int]):
        self.base = units
        self.index = [i for i, r in enumerate(repeats) for _ in range(r)]
        self.lengths = [units.lengths[i] for i in self.index]
        self.n_examples = sum(len(units.rows[i]) for i in self.index)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        return self.base[self.index[i]]


def balancing_repeats(objects: pd.DataFrame, image_ids: list[str], pairs: dict[str, str]) -> list[int]:
    """Copies per training image so that, for each biased shape, every colour it appears with is
    seen as often as its most frequent colour (rounded to whole copies; 1 for images without a
    biased shape). ``objects``: ``objects_frame`` of the training split; ``image_ids``: the
    image of each training unit, in unit order."""
    repeats = {image_id: 1 for image_id in image_ids}
    for shape in pairs:
        of_shape = objects[objects["shape"] == shape]
        per_colour = of_shape.groupby("colour")["image_id"].apply(list)
        most = max((len(v) for v in per_colour), default=0)
        for ids in per_colour:
            factor = max(1, round(most / len(ids)))
            for image_id in ids:
                repeats[image_id] = max(repeats.get(image_id, 1), factor)
    return [repeats.get(i, 1) for i in image_ids]


def repeated_rows(examples: list, repeats: list[int]) -> list:
    """Each row of image i ``repeats[i]`` times (rows without an image once): what stage 0's reading
    learns from under the oversampling mitigation (an image's rows repeated weigh more)."""
    return [e for e in examples for _ in range(repeats[e.image] if e.image is not None else 1)]


def realised_prior_share(objects: pd.DataFrame, pairs: dict[str, str]) -> float:
    """P(prior colour | biased shape) over the objects of a training split."""
    biased = objects[objects["shape"].isin(list(pairs))]
    return float((biased["shape"].map(pairs) == biased["colour"]).mean())


@dataclass
class Trained:
    strength: float
    mitigation: str
    model: object
    processor: object
    steps: int
    seconds: float
    train_objects: pd.DataFrame
    tasks: tuple[str, ...] = ()  # what it was trained on


def train_at(run: Path, values: dict, processed, strength: float, mitigation: str, out: Path,
             pairs: dict[str, str] | None = None) -> Trained:
    """The fused model trained on ``processed`` (one strength's scenes) as 03_fuse trains it;
    ``pairs`` (shape → colour) are what ``oversample`` balances."""
    if mitigation not in MITIGATIONS:
        raise ValueError(f"unknown mitigation {mitigation!r}; mitigations: {', '.join(MITIGATIONS)}")
    # stage 0 stops early on validation; stage 2 keeps its best epoch on it (as 03 does)
    needs_validation = values.get("fuse_stage0_epochs", 0) > 0 or values.get("fuse_keep_best_epoch", False)
    splits = ("train", "validation") if needs_validation else ("train",)
    prepared = fused.prepare(Path(run), values, splits=splits, processed=processed)
    train_set, read_rows = prepared.train_set, prepared.examples["train"]
    objects = objects_frame(processed.images["train"])
    if mitigation == "oversample":
        # copies per training image, for the units (stages 1–2) and stage 0's rows alike
        per_image = balancing_repeats(objects, list(processed.images["train"]["image_id"]), pairs or {})
        train_set = Oversampled(train_set, [per_image[u.image] if u.image is not None else 1 for u in train_set.units])
        read_rows = repeated_rows(read_rows, per_image)
    # the same optimiser steps as without the mitigation: fewer passes over the repeated set
    scale = len(prepared.train_set) / len(train_set)
    plan = fused.plan(values, scale=scale)
    start = time.perf_counter()
    fused.read_stage(prepared, values, read_rows)
    trainers = fused.train_quietly(prepared.model, train_set, prepared.collator, plan, Path(out) / "checkpoints", values,
                                   eval_set=prepared.sets.get("validation") if values.get("fuse_keep_best_epoch") else None)
    seconds = time.perf_counter() - start
    prepared.model.save_pretrained(Path(out) / "fused")
    prepared.processor.save_pretrained(Path(out) / "fused")
    return Trained(strength, mitigation, prepared.model, prepared.processor,
                   sum(t.state.global_step for t in trainers.values()), seconds, objects, prepared.tasks)


def evaluate_at(trained: Trained, processed, batch_size: int = 256, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """VQA on the balanced test split: (predictions with the image's attributes, metrics)."""
    from ..data.tasks import task_examples
    from ..metrics.frames import predictions_frame
    from ..metrics.generate import generate, max_target_tokens
    from ..metrics.intervals import accuracy_metrics, answers_correct

    images = processed.images["test"]
    pixels, _ = fused.split_inputs(processed, trained.processor, ("test",), ("image",))
    examples = task_examples(images, None, ["vqa"])
    train_targets = [e.target for e in task_examples(processed.images["train"], None, ["vqa"])]
    answers = generate(trained.model, trained.processor, examples, pixels["test"], batch_size=batch_size,
                       max_new_tokens=max_target_tokens(trained.processor, train_targets), progress=False)
    qa = predictions_frame(examples, answers, "vqa", images)
    metrics = accuracy_metrics(answers_correct(qa["prediction"], qa["answer"]), qa["question_type"], "vqa/exact_match",
                               seed=seed)
    test_objects = objects_frame(images)
    shapes = bias_audit.vocabulary(trained.train_objects, test_objects, column="shape")
    colours = bias_audit.vocabulary(trained.train_objects, test_objects, column="colour")
    items = bias_audit.attribute_items(qa, shapes, colours)
    metrics |= bias_audit.amplification_metrics(trained.train_objects, items, shapes, colours, seed=seed)
    return qa, metrics


def speech_at(trained: Trained, processed, batch_size: int = 256, seed: int = 0, ctc_weight: float = 0.0):
    """ASR and spoken VQA on the test clips, when the study's data has speech and its model was
    trained on those tasks: (``{task: predictions}``, fairness tables, metrics — WER, spoken-VQA
    exact match and ``fairness/<task>/<group>/difference|ratio`` by voice, accent, gender and
    engine, as 05_bias reports them for the default run). ``({}, {}, {})`` without speech.
    Transcripts are decoded as 04 decodes them (the CTC head's share ``ctc_weight``)."""
    from ..data.tasks import task_examples
    from ..metrics.frames import predictions_frame
    from ..metrics.generate import generate, max_target_tokens
    from ..metrics.intervals import accuracy_metrics, answers_correct, error_rate_metrics
    from .fairness import speech_fairness

    tasks = [t for t in ("asr", "spoken_vqa") if t in trained.tasks]
    if processed.speech is None or not tasks:
        return {}, {}, {}
    images, clips = processed.images["test"], processed.speech["test"]
    pixels, features, masks = fused.split_inputs(processed, trained.processor, ("test",), with_masks=True)
    examples = task_examples(images, clips, tasks)
    train = task_examples(processed.images["train"], processed.speech["train"], tasks)
    limits = {t: max_target_tokens(trained.processor, [e.target for e in train if e.task == t]) for t in tasks}
    answers = generate(trained.model, trained.processor, examples, pixels["test"], features["test"],
                       batch_size=batch_size, max_new_tokens=limits, progress=False, frame_mask=masks["test"],
                       ctc_weight=ctc_weight)
    frames, metrics = {}, {}
    if "asr" in tasks:
        asr = predictions_frame(examples, answers, "asr", images, clips).rename(columns={"answer": "reference"})
        frames["asr"] = asr
        metrics |= {f"asr/{k}": v for k, v in error_rate_metrics(list(asr["reference"]), list(asr["prediction"]),
                                                                  seed=seed).items() if k.startswith("wer")}
    if "spoken_vqa" in tasks:
        spoken = predictions_frame(examples, answers, "spoken_vqa", images, clips)
        spoken["correct"] = answers_correct(spoken["prediction"], spoken["answer"])
        frames["spoken_vqa"] = spoken
        metrics |= accuracy_metrics(spoken["correct"], prefix="spoken_vqa/exact_match", seed=seed)
    tables, disparities = speech_fairness(frames.get("asr"), frames.get("spoken_vqa"), seed=seed)
    return frames, tables, metrics | disparities


def fairness_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (strength, mitigation, seed, task, group) from the study table's
    ``fairness/<task>/<group>/…`` columns: the task's overall value, the difference between the
    best and the worst group with its interval, the permutation test's p-value and whether a
    difference is established (p < 0.05; absent: not), and the ratio; empty without speech."""
    overall = {"asr": "asr/wer", "spoken_vqa": "spoken_vqa/exact_match"}
    rows = []
    for record in table.to_dict("records"):
        for key, value in record.items():
            parts = key.split("/")
            if len(parts) != 4 or parts[0] != "fairness" or parts[3] != "difference" or pd.isna(value):
                continue
            _, task, group, _ = parts
            stem = f"fairness/{task}/{group}"
            rows.append({"strength": record["strength"], "mitigation": record["mitigation"],
                         "seed": record.get("seed", 0), "task": task,
                         "group": group, "overall": record.get(overall[task]), "difference": value,
                         "ci95_low": record.get(f"{stem}/difference/ci95_low"),
                         "ci95_high": record.get(f"{stem}/difference/ci95_high"),
                         "p_value": record.get(f"{stem}/difference/p_value"),
                         "established": bool(record.get(f"{stem}/difference/established") or False),
                         "ratio": record.get(f"{stem}/ratio")})
    return pd.DataFrame(rows, columns=["strength", "mitigation", "seed", "task", "group", "overall", "difference", "ci95_low",
                                       "ci95_high", "p_value", "established", "ratio"])


def counterfactuals(trained: Trained, processed, pairs: dict[str, str], size: int, limit: int = 100) -> pd.DataFrame:
    """Test scenes holding a biased shape, re-rendered with one attribute changed:

    - ``colour``: the biased shape in every other colour (the prior's colour included), asked
      "what color is the <shape>?";
    - ``shape``: an object of the prior's colour given the biased shape and every other shape the
      scene does not hold, asked "what shape is the <colour> object?".

    One row per probe: what was rendered, the answer, whether it follows the picture
    (``follows_image``) and, where picture and prior disagree, whether it names the prior
    (``follows_prior``)."""
    from PIL import Image

    from ..metrics.generate import ask

    rows = []
    images = processed.images["test"]
    for r in images.select_columns(["image_id", "objects"]):
        if len({row["image_id"] for row in rows}) >= limit:
            break
        objects = [S.SceneObject(o["shape"], o["colour"], o["size"], o["x"], o["y"]) for o in r["objects"]]
        for k, obj in enumerate(objects):
            if obj.shape not in pairs:
                continue
            prior = pairs[obj.shape]
            taken = {o.colour for j, o in enumerate(objects) if j != k}
            for colour in [c for c in S.COLOURS if c not in taken and c != obj.colour][:3] + \
                          ([prior] if prior not in taken and prior != obj.colour else []):
                probe = [o if j != k else S.SceneObject(o.shape, colour, o.size, o.x, o.y) for j, o in enumerate(objects)]
                rows.append(_probe(ask, trained, Image, r["image_id"], "colour", probe, size,
                                   f"what color is the {obj.shape}?", colour, prior))
            shapes_taken = {o.shape for j, o in enumerate(objects) if j != k}
            if prior not in taken:
                for shape in [s for s in S.SHAPES if s not in shapes_taken]:
                    probe = [o if j != k else S.SceneObject(shape, prior, o.size, o.x, o.y) for j, o in enumerate(objects)]
                    rows.append(_probe(ask, trained, Image, r["image_id"], "shape", probe, size,
                                       f"what shape is the {prior} object?", shape, obj.shape if shape != obj.shape
                                       else ""))
    return pd.DataFrame(rows)


def _probe(ask, trained, Image, image_id, changed, objects, size, question, truth, prior) -> dict:
    from ..metrics.vqa import answer_matches, normalise_answer

    picture = Image.open(io.BytesIO(S.render(objects, size))).convert("RGB")
    answer = normalise_answer(ask(trained.model, trained.processor, image=picture, question=question,
                                  max_new_tokens=4).text)
    disagree = bool(prior) and prior != truth
    return {"image_id": image_id, "changed": changed, "question": question, "rendered": truth, "prior": prior,
            "answer": answer, "follows_image": answer_matches(answer, truth),
            "follows_prior": answer_matches(answer, prior) if disagree else np.nan}


def probe_rates(probes: pd.DataFrame) -> dict[str, float]:
    """Share of probes answered as rendered, and as the prior where the two disagree, per change."""
    out = {}
    for changed, part in probes.groupby("changed"):
        out[f"counterfactual/{changed}/follows_image"] = float(part["follows_image"].mean())
        disagree = part["follows_prior"].dropna()
        if len(disagree):
            out[f"counterfactual/{changed}/follows_prior"] = float(disagree.astype(float).mean())
    return out


def _change(delta: float) -> str:
    points = f"{abs(delta) * 100:.2f} points"
    return f"a cost of {points}" if delta < 0 else f"a gain of {points}" if delta > 0 else "no change"


def _verdict(difference: float, low: float, high: float, established: bool) -> str:
    return f"{difference:+.3f} [{low:+.3f}, {high:+.3f}]: {'established' if established else 'not established'}"


def seed_tests(table: pd.DataFrame) -> pd.DataFrame:
    """The study's comparisons at the level of trainings (``stats.seed_difference``, seed k of
    both arms paired: the same data, the same initialisation and batch-order seed) with Holm's
    correction over all of them: directional amplification A→T at the strongest strength minus at
    the weakest, and for each mitigation its amplification and VQA exact match minus the unmitigated
    model's at its strength. Empty with fewer than two seeds per arm."""
    from ..metrics.stats import holm, seed_difference

    name = "bias/directional_amplification/A->T"
    if "seed" not in table or table.groupby(["strength", "mitigation"]).size().min() < 2 or name not in table:
        return pd.DataFrame()
    by_seed = table.pivot_table(index="seed", columns=["strength", "mitigation"], values=[name, "vqa/exact_match"])
    plain = sorted(table.loc[table["mitigation"] == "none", "strength"].unique())
    wanted = []
    if len(plain) >= 2:
        wanted.append(("amplification: strongest − weakest", name, (plain[-1], "none"), (plain[0], "none")))
    for strength, mitigation in table.loc[table["mitigation"] != "none", ["strength", "mitigation"]].drop_duplicates().values:
        if strength in plain:
            for label, metric in (("amplification", name), ("exact match", "vqa/exact_match")):
                wanted.append((f"{label}: {mitigation} − none", metric, (strength, mitigation), (strength, "none")))
    rows = []
    for label, metric, a, b in wanted:
        pair = by_seed[[(metric, *a), (metric, *b)]].dropna()
        rows.append({"comparison": label, "metric": metric, "strength": a[0], "seeds": len(pair),
                     **{k: v for k, v in seed_difference(pair.iloc[:, 0], pair.iloc[:, 1]).items() if k != "seeds"}})
    out = pd.DataFrame(rows)
    if len(out):
        out["p_holm"] = holm(out["p_value"])
        out["established"] = out["p_holm"] < 0.05
    return out


def findings(table: pd.DataFrame) -> list[str]:
    """Sentences the numbers support: does amplification rise with the injected strength, what
    did the mitigation change and cost. ``table``: one row per training (strength, mitigation,
    seed). With two or more seeds per arm the verdicts come from ``seed_tests`` (differences over
    trainings, Holm-corrected); with one, from the paired differences on the same test images of
    that one training per arm, which say nothing about another training."""
    lines = []
    seeds = table["seed"].nunique() if "seed" in table else 1
    tests = seed_tests(table)
    means = summarise(table)
    plain = means[means["mitigation"] == "none"].sort_values("strength")
    name = "bias/directional_amplification/A->T"
    if len(plain) >= 2 and name in plain:
        values = plain[name].to_numpy()
        rising = bool(np.all(np.diff(values) > 0))
        low, high = plain.iloc[0], plain.iloc[-1]
        gap = f"{name}/minus_weakest"
        if len(tests):
            t = tests.iloc[0]
            verdict = (f"difference over {t['seeds']} seeds (paired t, Holm p {t['p_holm']:.3g}) "
                       + _verdict(t["difference"], t["ci95_low"], t["ci95_high"], t["established"]))
        elif gap in high and pd.notna(high[gap]):
            established = high[f"{gap}/ci95_low"] > 0 or high[f"{gap}/ci95_high"] < 0
            verdict = ("paired difference " + _verdict(high[gap], high[f"{gap}/ci95_low"], high[f"{gap}/ci95_high"],
                                                       established).replace(":", " on the same test images:", 1)
                       + " (one training per strength: these trained models differ, not necessarily the recipe)")
        else:
            verdict = "no paired difference was computed: not established"
        lines.append(
            f"Directional amplification shape → colour {'rises' if rising else 'does not rise steadily'} with the "
            f"injected strength{f' (means over {seeds} seeds)' if seeds > 1 else ''}: {low[name]:+.3f} at "
            f"{low['strength']:.2f}, {high[name]:+.3f} at {high['strength']:.2f} — {verdict}.")
    if "counterfactual/colour/follows_image" in plain:
        lines.append("Counterfactual colour probes answered as rendered: " + ", ".join(
            f"{r['counterfactual/colour/follows_image']:.0%} at {r['strength']:.2f}" for _, r in plain.iterrows()) + ".")
    strongest = table[table["mitigation"] == "none"]
    strongest = strongest[strongest["strength"] == strongest["strength"].max()]
    first = strongest[strongest["seed"] == strongest["seed"].min()] if "seed" in strongest else strongest.tail(1)
    for task, part in fairness_table(first).groupby("task", sort=False):
        worst = part.sort_values("difference").iloc[-1]
        test = "" if pd.isna(worst["p_value"]) else f"; permutation p = {worst['p_value']:.3f}"
        which = f", seed {int(first['seed'].iloc[0])}" if seeds > 1 else ""
        lines.append(f"Speech, model at strength {worst['strength']:.2f}{which}: {task} differs most by {worst['group']} — "
                     f"a difference of {worst['difference']:.3f} [{worst['ci95_low']:.3f}, {worst['ci95_high']:.3f}] "
                     f"between the best and the worst {worst['group']}{test}"
                     f"{'' if worst['established'] else ' (not established: the permutation test does not reject equal groups)'}.")
    for _, m in means[means["mitigation"] != "none"].iterrows():
        before = plain[plain["strength"] == m["strength"]]
        if not len(before) or name not in m:
            continue
        b = before.iloc[0]
        line = (f"{m['mitigation']} at strength {m['strength']:.2f}: directional amplification "
                f"{b[name]:+.3f} → {m[name]:+.3f}; VQA exact match {b['vqa/exact_match']:.2%} → "
                f"{m['vqa/exact_match']:.2%} ({_change(m['vqa/exact_match'] - b['vqa/exact_match'])})")
        mine = tests[tests["comparison"].str.endswith(f"{m['mitigation']} − none") & (tests["strength"] == m["strength"])] \
            if len(tests) else tests
        for t in mine.to_dict("records"):
            line += (f"; {t['comparison'].split(':')[0]} difference over {t['seeds']} seeds (Holm p {t['p_holm']:.3g}) "
                     + _verdict(t["difference"], t["ci95_low"], t["ci95_high"], t["established"]))
        if not len(mine):
            for label, key in (("amplification", f"{name}/minus_unmitigated"),
                               ("exact match", "vqa/exact_match/minus_unmitigated")):
                if key in m and pd.notna(m[key]):
                    apart = m[f"{key}/ci95_low"] > 0 or m[f"{key}/ci95_high"] < 0
                    line += f"; paired {label} difference " + _verdict(m[key], m[f"{key}/ci95_low"],
                                                                       m[f"{key}/ci95_high"], apart)
        lines.append(line + ".")
    return lines


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """One row per arm (strength, mitigation): each number's mean over the arm's seeds. With two
    or more seeds, ``<metric>/seed_ci95_low`` and ``…_high`` give the t interval of that mean over
    seeds (the trainings' spread) beside the mean of the per-training test-resampling intervals
    (``<metric>/ci95_low``, ``…_high``); ``seeds`` counts the trainings."""
    from ..metrics.stats import seed_mean_interval

    if "seed" not in table:
        table = table.assign(seed=0)
    keys = ["strength", "mitigation"]
    numeric = [c for c in table.columns if c not in keys + ["seed"] and pd.api.types.is_numeric_dtype(table[c])]
    grouped = table.groupby(keys, sort=False)
    out = grouped[numeric].mean().reset_index()
    out.insert(2, "seeds", grouped.size().to_numpy())
    if out["seeds"].min() >= 2:
        for metric in [m for m in (*AMPLIFICATION, *PROBES, "vqa/exact_match") if m in table]:
            bounds = [seed_mean_interval(group) for _, group in grouped[metric]]
            out[f"{metric}/seed_ci95_low"] = [low for _, low, _ in bounds]
            out[f"{metric}/seed_ci95_high"] = [high for _, _, high in bounds]
    return out


AMPLIFICATION = ("bias/amplification", "bias/directional_amplification/A->T", "bias/directional_amplification/T->A")
PROBES = ("counterfactual/colour/follows_image", "counterfactual/colour/follows_prior",
          "counterfactual/shape/follows_image", "counterfactual/shape/follows_prior")


SHOWN = ("vqa/exact_match", *AMPLIFICATION, *PROBES)


def arm_table(table: pd.DataFrame) -> pd.DataFrame:
    """07's table: one row per arm, each number its mean over seeds, then (two or more seeds) the
    95% t interval over seeds in brackets, then (where the metric has one) the mean test-resampling
    interval of a single training in parentheses — the two kinds of uncertainty side by side."""
    means = summarise(table)
    out = means[["strength", "mitigation", "seeds"] + [c for c in ("realised P(prior colour | biased shape)", "steps")
                                                       if c in means]].round(4)
    for metric in [m for m in SHOWN if m in means]:
        cells = []
        for r in means.to_dict("records"):
            cell = f"{r[metric]:.4f}"
            if pd.notna(r.get(f"{metric}/seed_ci95_low", np.nan)):
                cell += f" [{r[f'{metric}/seed_ci95_low']:.4f}, {r[f'{metric}/seed_ci95_high']:.4f}]"
            if pd.notna(r.get(f"{metric}/ci95_low", np.nan)):
                cell += f" (test {r[f'{metric}/ci95_low']:.4f}–{r[f'{metric}/ci95_high']:.4f})"
            cells.append(cell)
        out[metric] = cells
    return out


def plot_amplification(table: pd.DataFrame):
    """Left: each amplification measure against the injected strength (its mean over seeds with the
    95% t interval over seeds; with one seed, the test-resampling interval), the mitigated model as
    a hollow marker; right: the counterfactual probe rates (means over seeds)."""
    import matplotlib.pyplot as plt

    table = summarise(table)
    bounds = "seed_ci95" if table["seeds"].min() >= 2 else "ci95"
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    plain = table[table["mitigation"] == "none"].sort_values("strength")
    mitigated = table[table["mitigation"] != "none"]
    for k, name in enumerate(m for m in AMPLIFICATION if m in table):
        colour = f"C{k}"
        err = [plain[name] - plain[f"{name}/{bounds}_low"], plain[f"{name}/{bounds}_high"] - plain[name]]
        left.errorbar(plain["strength"] + 0.004 * k, plain[name], yerr=err, marker="o", capsize=3, color=colour,
                      label=name.removeprefix("bias/"))
        if len(mitigated):
            left.scatter(mitigated["strength"] + 0.004 * k, mitigated[name], marker="s", facecolors="none",
                         edgecolors=colour, s=60, label=f"{name.removeprefix('bias/')}, {mitigated['mitigation'].iloc[0]}")
    left.axhline(0, color="grey", lw=0.8)
    left.set_xlabel("injected P(colour | shape) in training")
    left.set_ylabel("amplification")
    left.set_title(f"mean of {table['seeds'].min()} training(s) per point; bars: 95% "
                   + ("t interval over seeds" if bounds == "seed_ci95" else "interval, test images resampled"), fontsize=9)
    left.legend(fontsize=6)
    for k, name in enumerate(p for p in PROBES if p in table):
        right.plot(plain["strength"], plain[name], marker="o", label=name.removeprefix("counterfactual/"), color=f"C{k}")
        if len(mitigated):
            right.scatter(mitigated["strength"], mitigated[name], marker="s", facecolors="none", edgecolors=f"C{k}", s=60)
    right.set_ylim(0, 1)
    right.set_xlabel("injected P(colour | shape) in training")
    right.set_ylabel("share of probes")
    right.legend(fontsize=6)
    right.set_title("counterfactual probes (squares: mitigated)", fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- 07_bias_study's sections

def study_plan(collected: dict | None, params: dict) -> tuple[dict, list[tuple[float, str]]]:
    """The pairs to inject (from the run's 01_collect parameters ``collected``) and the trainings:
    one per strength, and the mitigation at the strongest. Raises when the run cannot take it."""
    if collected is None:
        raise ValueError("this run's dataset.json has no 01_collect parameters (an older run); rerun 01_collect")
    pairs = parse_bias_pairs(collected["bias_pairs"])
    if not pairs:
        raise ValueError("bias_pairs is empty: name the shape:colour pairs to inject, e.g. "
                         "--set 'bias_pairs=[\"circle:red\"]'")
    plan = [(s, "none") for s in sorted(params["bias_strengths"])]
    if params["bias_mitigation"] != "none":
        plan.append((max(params["bias_strengths"]), params["bias_mitigation"]))
    return pairs, plan


def run_plan(run: Path, params: dict, collected: dict, pairs: dict, plan, data_root: Path):
    """Each training of ``plan``, ``bias_seeds`` times (seed, seed + 1, …: the initialisation and
    batch order vary, each strength's scenes stay the same): the fused model trained as 03 trains
    it, VQA with bias amplification, counterfactual probes and (with speech) the voice-group
    disparities; predictions saved under ``run/bias_study/<strength>-<mitigation>-seed<k>/``.
    Returns (one row per training, the probes, {(strength, mitigation, seed): (fairness tables,
    metrics)})."""
    rows, probes, spoken, arms = [], [], {}, {}
    for strength, mitigation in plan:
        processed = dataset_at(collected, strength, data_root)
        for seed in range(params["seed"], params["seed"] + params.get("bias_seeds", 1)):
            values = dict(params, seed=seed)
            out = Path(run) / "bias_study" / f"strength{strength:.2f}-{mitigation}-seed{seed}"
            trained = train_at(run, values, processed, strength, mitigation, out, pairs)
            qa, metrics = evaluate_at(trained, processed, params["eval_batch_size"], params["seed"])
            arms[(strength, mitigation, seed)] = (trained.train_objects, qa, objects_frame(processed.images["test"]))
            probe = counterfactuals(trained, processed, pairs, collected["scene_image_size"], params["probe_images"])
            probes.append(probe.assign(strength=strength, mitigation=mitigation, seed=seed))
            frames, tables, heard = speech_at(trained, processed, params["eval_batch_size"], params["seed"],
                                              params.get("asr_ctc_weight", 0.0))
            for task, frame in frames.items():
                frame.to_csv(out / f"{task}_predictions.csv", index=False)
            spoken[(strength, mitigation, seed)] = (tables, heard)
            realised = realised_prior_share(trained.train_objects, pairs)
            rows.append({"strength": strength, "mitigation": mitigation, "seed": seed,
                         "realised P(prior colour | biased shape)": realised, "steps": trained.steps,
                         "train seconds": trained.seconds, **metrics, **heard, **probe_rates(probe)})
            print(f"strength {strength:.2f} {mitigation} seed {seed}: trained {trained.steps} steps in "
                  f"{trained.seconds:.0f} s; VQA {metrics['vqa/exact_match']:.2%}")
    table = pd.DataFrame(rows)
    for seed in table["seed"].unique():
        mine = {k[:2]: v for k, v in arms.items() if k[2] == seed}
        for key, columns in paired_columns(mine, params["seed"]).items():
            for name, value in columns.items():
                table.loc[(table["strength"] == key[0]) & (table["mitigation"] == key[1]) & (table["seed"] == seed),
                          name] = value
    return table, pd.concat(probes), spoken


def paired_columns(arms: dict, seed: int = 0) -> dict[tuple[float, str], dict[str, float]]:
    """Paired differences on the same balanced test questions (test images resampled for both
    models at once): the strongest unmitigated model's directional amplification A→T minus the
    weakest's (``…/minus_weakest``), and each mitigated model minus the unmitigated one at its
    strength — amplification and VQA exact match (``…/minus_unmitigated``, with the sign-flip p).
    ``arms``: {(strength, mitigation): (training objects, VQA predictions, test objects)}."""
    from ..metrics.intervals import answers_correct, paired_difference

    name = "bias/directional_amplification/A->T"
    out: dict = {}

    def items_of(train, qa, test):
        shapes = bias_audit.vocabulary(train, test, column="shape")
        colours = bias_audit.vocabulary(train, test, column="colour")
        return bias_audit.attribute_items(qa, shapes, colours)

    def amplification_gap(a, b, label):
        (train_a, qa_a, test), (train_b, qa_b, _) = arms[a], arms[b]
        both = pd.concat([train_a, train_b])
        shapes = bias_audit.vocabulary(both, test, column="shape")
        colours = bias_audit.vocabulary(both, test, column="colour")
        return bias_audit.paired_amplification(train_a, items_of(train_a, qa_a, test), train_b,
                                               items_of(train_b, qa_b, test), shapes, colours, f"{name}/{label}", seed)

    plain = sorted(k for k in arms if k[1] == "none")
    if len(plain) >= 2:
        out[plain[-1]] = amplification_gap(plain[-1], plain[0], "minus_weakest")
    for key in [k for k in arms if k[1] != "none"]:
        base = (key[0], "none")
        if base not in arms:
            continue
        columns = amplification_gap(key, base, "minus_unmitigated")
        qa, qa_base = arms[key][1], arms[base][1]
        columns |= paired_difference(answers_correct(qa["prediction"], qa["answer"]),
                                     answers_correct(qa_base["prediction"], qa_base["answer"]), qa["image_id"],
                                     "vqa/exact_match/minus_unmitigated", seed)
        out[key] = columns
    return out


def study_metrics(table: pd.DataFrame) -> dict[str, float]:
    """``bias_study/<mitigation>/<strength>/<metric>`` for every number of every arm: the mean
    over its seeds (``summarise``), with the seed intervals when there are two or more."""
    return {f"bias_study/{r['mitigation']}/{r['strength']:.2f}/{k}": float(v) for r in summarise(table).to_dict("records")
            for k, v in r.items() if k not in ("strength", "mitigation") and pd.notna(v) and isinstance(v, (int, float))}
