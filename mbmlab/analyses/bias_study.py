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
    prepared = fused.prepare(Path(run), values, splits=("train",), processed=processed)
    train_set = prepared.train_set
    objects = objects_frame(processed.images["train"])
    if mitigation == "oversample":
        ids = processed.images["train"]["image_id"]
        unit_images = [ids[u.image] if u.image is not None else "" for u in train_set.units]
        train_set = Oversampled(train_set, balancing_repeats(objects, unit_images, pairs or {}))
    # the same optimiser steps as without the mitigation: fewer passes over the repeated set
    scale = len(prepared.train_set) / len(train_set)
    plan = fused.stages(values["fuse_stage1_epochs"] * scale, values["fuse_stage1_learning_rate"],
                        values["fuse_epochs"] * scale, values["fuse_learning_rate"], values["fuse_train_parts"])
    start = time.perf_counter()
    trainers = fused.train_quietly(prepared.model, train_set, prepared.collator, plan, Path(out) / "checkpoints", values)
    seconds = time.perf_counter() - start
    prepared.model.save_pretrained(Path(out) / "fused")
    prepared.processor.save_pretrained(Path(out) / "fused")
    return Trained(strength, mitigation, prepared.model, prepared.processor,
                   sum(t.state.global_step for t in trainers.values()), seconds, objects, prepared.tasks)


def evaluate_at(trained: Trained, processed, batch_size: int = 256, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """VQA on the balanced test split: (predictions with the image's attributes, metrics)."""
    from ..data.tasks import task_examples
    from ..metrics import generate, max_target_tokens, predictions_frame
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


def speech_at(trained: Trained, processed, batch_size: int = 256, seed: int = 0):
    """ASR and spoken VQA on the test clips, when the study's data has speech and its model was
    trained on those tasks: (``{task: predictions}``, fairness tables, metrics — WER, spoken-VQA
    exact match and ``fairness/<task>/<group>/difference|ratio`` by voice, accent, gender and
    engine, as 05_bias reports them for the default run). ``({}, {}, {})`` without speech."""
    from ..data.tasks import task_examples
    from ..metrics import generate, max_target_tokens, predictions_frame
    from ..metrics.intervals import accuracy_metrics, answers_correct, error_rate_metrics
    from .fairness import speech_fairness

    tasks = [t for t in ("asr", "spoken_vqa") if t in trained.tasks]
    if processed.speech is None or not tasks:
        return {}, {}, {}
    images, clips = processed.images["test"], processed.speech["test"]
    pixels, features = fused.split_inputs(processed, trained.processor, ("test",))
    examples = task_examples(images, clips, tasks)
    train = task_examples(processed.images["train"], processed.speech["train"], tasks)
    limits = {t: max_target_tokens(trained.processor, [e.target for e in train if e.task == t]) for t in tasks}
    answers = generate(trained.model, trained.processor, examples, pixels["test"], features["test"],
                       batch_size=batch_size, max_new_tokens=limits, progress=False)
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
    """One row per (strength, mitigation, task, group) from the study table's
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
            rows.append({"strength": record["strength"], "mitigation": record["mitigation"], "task": task,
                         "group": group, "overall": record.get(overall[task]), "difference": value,
                         "ci95_low": record.get(f"{stem}/difference/ci95_low"),
                         "ci95_high": record.get(f"{stem}/difference/ci95_high"),
                         "p_value": record.get(f"{stem}/difference/p_value"),
                         "established": bool(record.get(f"{stem}/difference/established") or False),
                         "ratio": record.get(f"{stem}/ratio")})
    return pd.DataFrame(rows, columns=["strength", "mitigation", "task", "group", "overall", "difference", "ci95_low",
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


def findings(table: pd.DataFrame) -> list[str]:
    """Sentences the numbers support: does amplification rise with the injected strength, what
    did the mitigation change and cost. ``table``: one row per (strength, mitigation)."""
    lines = []
    plain = table[table["mitigation"] == "none"].sort_values("strength")
    name = "bias/directional_amplification/A->T"
    if len(plain) >= 2 and name in plain:
        values = plain[name].to_numpy()
        rising = bool(np.all(np.diff(values) > 0))
        low, high = plain.iloc[0], plain.iloc[-1]
        gap = f"{name}/minus_weakest"
        if gap in high and pd.notna(high[gap]):
            established = high[f"{gap}/ci95_low"] > 0 or high[f"{gap}/ci95_high"] < 0
            verdict = (f"paired difference {high[gap]:+.3f} [{high[f'{gap}/ci95_low']:+.3f}, {high[f'{gap}/ci95_high']:+.3f}] "
                       f"on the same test images: {'established' if established else 'not established'}")
        else:
            verdict = "no paired difference was computed: not established"
        lines.append(
            f"Directional amplification shape → colour {'rises' if rising else 'does not rise steadily'} with the "
            f"injected strength: {low[name]:+.3f} at {low['strength']:.2f}, {high[name]:+.3f} at {high['strength']:.2f}"
            f" — {verdict} (one training per strength: these trained models differ, not necessarily the recipe).")
    if "counterfactual/colour/follows_image" in plain:
        lines.append("Counterfactual colour probes answered as rendered: " + ", ".join(
            f"{r['counterfactual/colour/follows_image']:.0%} at {r['strength']:.2f}" for _, r in plain.iterrows()) + ".")
    fair = fairness_table(plain.tail(1))
    for task, part in fair.groupby("task", sort=False):
        worst = part.sort_values("difference").iloc[-1]
        test = "" if pd.isna(worst["p_value"]) else f"; permutation p = {worst['p_value']:.3f}"
        lines.append(f"Speech, model at strength {worst['strength']:.2f}: {task} differs most by {worst['group']} — "
                     f"a difference of {worst['difference']:.3f} [{worst['ci95_low']:.3f}, {worst['ci95_high']:.3f}] "
                     f"between the best and the worst {worst['group']}{test}"
                     f"{'' if worst['established'] else ' (not established: the permutation test does not reject equal groups)'}.")
    mitigated = table[table["mitigation"] != "none"]
    for _, m in mitigated.iterrows():
        before = plain[plain["strength"] == m["strength"]]
        if len(before) and name in m:
            b = before.iloc[0]
            line = (f"{m['mitigation']} at strength {m['strength']:.2f}: directional amplification "
                    f"{b[name]:+.3f} → {m[name]:+.3f}; VQA exact match {b['vqa/exact_match']:.2%} → "
                    f"{m['vqa/exact_match']:.2%} ({_change(m['vqa/exact_match'] - b['vqa/exact_match'])})")
            for label, key in (("amplification", f"{name}/minus_unmitigated"),
                               ("exact match", "vqa/exact_match/minus_unmitigated")):
                if key in m and pd.notna(m[key]):
                    apart = m[f"{key}/ci95_low"] > 0 or m[f"{key}/ci95_high"] < 0
                    line += (f"; paired {label} difference {m[key]:+.3f} [{m[f'{key}/ci95_low']:+.3f}, "
                             f"{m[f'{key}/ci95_high']:+.3f}]: {'established' if apart else 'not established'}")
            lines.append(line + ".")
    return lines


AMPLIFICATION = ("bias/amplification", "bias/directional_amplification/A->T", "bias/directional_amplification/T->A")
PROBES = ("counterfactual/colour/follows_image", "counterfactual/colour/follows_prior",
          "counterfactual/shape/follows_image", "counterfactual/shape/follows_prior")


def plot_amplification(table: pd.DataFrame):
    """Left: each amplification measure against the injected strength (95% intervals), the
    mitigated model as a hollow marker; right: the counterfactual probe rates."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    plain = table[table["mitigation"] == "none"].sort_values("strength")
    mitigated = table[table["mitigation"] != "none"]
    for k, name in enumerate(m for m in AMPLIFICATION if m in table):
        colour = f"C{k}"
        err = [plain[name] - plain[f"{name}/ci95_low"], plain[f"{name}/ci95_high"] - plain[name]]
        left.errorbar(plain["strength"] + 0.004 * k, plain[name], yerr=err, marker="o", capsize=3, color=colour,
                      label=name.removeprefix("bias/"))
        if len(mitigated):
            left.scatter(mitigated["strength"] + 0.004 * k, mitigated[name], marker="s", facecolors="none",
                         edgecolors=colour, s=60, label=f"{name.removeprefix('bias/')}, {mitigated['mitigation'].iloc[0]}")
    left.axhline(0, color="grey", lw=0.8)
    left.set_xlabel("injected P(colour | shape) in training")
    left.set_ylabel("amplification")
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
    """Each training of ``plan``: the scenes at its strength, the fused model trained as 03 trains
    it, VQA with bias amplification, counterfactual probes and (with speech) the voice-group
    disparities; predictions saved under ``run/bias_study/<strength>-<mitigation>/``. Returns
    (one row per training, the probes, {(strength, mitigation): (fairness tables, metrics)})."""
    rows, probes, spoken, arms = [], [], {}, {}
    for strength, mitigation in plan:
        processed = dataset_at(collected, strength, data_root)
        out = Path(run) / "bias_study" / f"strength{strength:.2f}-{mitigation}"
        trained = train_at(run, params, processed, strength, mitigation, out, pairs)
        qa, metrics = evaluate_at(trained, processed, params["eval_batch_size"], params["seed"])
        arms[(strength, mitigation)] = (trained.train_objects, qa, objects_frame(processed.images["test"]))
        probe = counterfactuals(trained, processed, pairs, collected["scene_image_size"], params["probe_images"])
        probes.append(probe.assign(strength=strength, mitigation=mitigation))
        frames, tables, heard = speech_at(trained, processed, params["eval_batch_size"], params["seed"])
        for task, frame in frames.items():
            frame.to_csv(out / f"{task}_predictions.csv", index=False)
        spoken[(strength, mitigation)] = (tables, heard)
        realised = realised_prior_share(trained.train_objects, pairs)
        rows.append({"strength": strength, "mitigation": mitigation, "realised P(prior colour | biased shape)": realised,
                     "steps": trained.steps, "train seconds": trained.seconds, **metrics, **heard,
                     **probe_rates(probe)})
        print(f"strength {strength:.2f} {mitigation}: trained {trained.steps} steps in {trained.seconds:.0f} s; "
              f"VQA {metrics['vqa/exact_match']:.2%}")
    table = pd.DataFrame(rows)
    for key, columns in paired_columns(arms, params["seed"]).items():
        for name, value in columns.items():
            table.loc[(table["strength"] == key[0]) & (table["mitigation"] == key[1]), name] = value
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
    """``bias_study/<mitigation>/<strength>/<metric>`` for every number of every training."""
    return {f"bias_study/{r['mitigation']}/{r['strength']:.2f}/{k}": v for r in table.to_dict("records")
            for k, v in r.items() if k not in ("strength", "mitigation") and pd.notna(v) and isinstance(v, (int, float))}
