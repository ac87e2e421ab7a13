"""Trained baselines for VQA (notebook 04_evaluate): what the fused model's answers are worth.

Each baseline is the fused model of 03_fuse with one input taken away, trained the way 03_fuse
trained it — same 02_train starting weights, same stages, batch, learning rates and parts, same
training questions — in stage 2 until its validation loss on the VQA rows stops improving
(evaluated ``EVALS_PER_EPOCH`` times an epoch; stopped after ``patience`` evaluations without a new
best, the best one's weights kept; transformers' ``EarlyStoppingCallback``), at most ``epochs``
stage-2 epochs — the budget cap, by default the fused model's ``fuse_epochs``:

- ``blind`` (question only): every image replaced by a blank one — all-zero pixel values, which
  after the image processor's normalisation (mean 0.5, std 0.5 per channel) is a uniform
  mid-grey picture (RGB 0.5, not the training set's mean colour) — so the model can learn only the language
  prior (Antol et al. 2015's "question-only" baseline; Goyal et al. 2017 show how far it goes on
  VQA v1);
- ``image_only`` (no question): every question replaced by the same text ``HIDDEN_QUESTION``,
  so the model can learn only what each image makes likely;
- ``random_init``: the fused model's architecture at its random initialisation (every part
  random, the LM too), not trained: the floor.

The majority-answer baselines need no training and live in ``mbmlab.metrics.vqa``.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.tasks import Example
from ..names import BASELINES
from ..training import fused

HIDDEN_QUESTION = "?"  # what image_only sees instead of each question
EVALS_PER_EPOCH = 4  # validation-loss evaluations per stage-2 epoch of a trained baseline


def check(kinds) -> tuple[str, ...]:
    unknown = [k for k in kinds if k not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; baselines: {', '.join(BASELINES)}")
    return tuple(kinds)


def ablate(kind: str, examples: list[Example], pixel_values: torch.Tensor | None):
    """The VQA examples and pixels a baseline trains on or is asked with."""
    examples = [e for e in examples if e.task == "vqa"]
    if kind == "blind":
        return examples, None if pixel_values is None else torch.zeros_like(pixel_values)
    if kind == "image_only":
        return [dataclasses.replace(e, question=HIDDEN_QUESTION) for e in examples], pixel_values
    if kind in ("random_init", "cnn_bow"):
        return examples, pixel_values
    raise ValueError(f"unknown baseline {kind!r}; baselines: {', '.join(BASELINES)}")


@dataclass
class Baseline:
    kind: str
    model: object
    processor: object  # cnn_bow: its Vocabulary
    epochs: float  # stage-2 epochs over the VQA rows trained (0: untrained); cnn_bow: its best validation epoch
    steps: int  # optimiser steps, both stages
    seconds: float  # training time
    cap: float = 0.0  # trained baselines: the stage-2 epochs allowed
    best_epoch: float = 0.0  # trained baselines: the stage-2 epoch of the weights kept (best validation loss)


def prepare(run: Path, fuse_params: dict):
    """03_fuse's starting point for the VQA rows only (``fused.prepare``), shared by the trained baselines."""
    prepared = fused.prepare(Path(run), dict(fuse_params, tasks=["vqa"]), splits=("train", "validation"))
    if "vqa" not in prepared.tasks:
        raise ValueError(f"the run has no VQA training data for the baselines ({prepared.skipped.get('vqa', '')})")
    return prepared


def untrained(config, processor, seed: int) -> Baseline:
    """``random_init``: the fused architecture at a seeded random initialisation."""
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(seed)
    return Baseline("random_init", AutoModelForImageTextToText.from_config(config).eval(), processor, 0.0, 0, 0.0)


def train_baseline(prepared, fuse_params: dict, kind: str, epochs: float, out: Path, patience: int = 2) -> Baseline:
    """Train baseline ``kind`` (``blind`` or ``image_only``) from a copy of ``prepared``'s fresh
    model with 03_fuse's parameters ``fuse_params``: stage 1 as 03_fuse, then stage 2 over the VQA
    rows until the validation loss has not improved for ``patience`` evaluations, at most
    ``epochs``; the best evaluation's weights are kept and saved under ``out/<kind>/``."""
    import copy
    import math
    import shutil

    from transformers import EarlyStoppingCallback

    if kind not in ("blind", "image_only"):
        raise ValueError(f"{kind!r} is not a baseline trained like the fused model; those are: blind, image_only")
    values, start, out = fuse_params, time.perf_counter(), Path(out)
    model = copy.deepcopy(prepared.model)
    sets = {}
    for split in ("train", "validation"):
        examples, pixels = ablate(kind, prepared.examples[split], prepared.pixel_values[split])
        sets[split] = fused.TaskUnits(examples, prepared.processor, pixels,  # 03's VQA cap, as the fused model
                                      fused.vqa_per_image(values) if split == "train" else 0, values["seed"])
    plan = fused.plan(values, epochs=epochs, stage0=False)  # no stage 0 here: nothing to keep
    trainers = fused.train_quietly(model, sets["train"], prepared.collator, plan[:-1], out / "checkpoints" / kind, values)
    every = max(1, math.ceil(len(sets["train"]) / values["fuse_batch_images"] / EVALS_PER_EPOCH))
    trainers |= fused.train_stages(
        model, sets["train"], prepared.collator, plan[-1:], out / "checkpoints" / kind, batch_size=values["fuse_batch_images"],
        seed=values["seed"], bf16=values["bf16"], eval_set=sets["validation"], logging_strategy="no", disable_tqdm=True,
        eval_strategy="steps", eval_steps=every, save_strategy="steps", save_steps=every, save_total_limit=1,
        save_only_model=True, load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False,
        callbacks={plan[-1].name: [EarlyStoppingCallback(early_stopping_patience=patience)]})
    for record in (out / "checkpoints" / kind).glob("*/throughput.json"):  # kept for the report's trainings table
        (out / "throughput" / kind / record.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(record, out / "throughput" / kind / record.parent.name / record.name)
    shutil.rmtree(out / "checkpoints" / kind, ignore_errors=True)  # the best evaluation's weights are loaded
    if (out / "checkpoints").is_dir() and not any((out / "checkpoints").iterdir()):
        (out / "checkpoints").rmdir()
    model.save_pretrained(out / kind)
    prepared.processor.save_pretrained(out / kind)
    stage2 = trainers[plan[-1].name].state
    per_epoch = stage2.max_steps / epochs
    best_step = int(stage2.best_model_checkpoint.rsplit("-", 1)[-1]) if stage2.best_model_checkpoint else stage2.global_step
    return Baseline(kind, model, prepared.processor, round(stage2.global_step / per_epoch, 3),
                    sum(t.state.global_step for t in trainers.values()), time.perf_counter() - start,
                    cap=epochs, best_epoch=round(best_step / per_epoch, 3))


def train_cnn_bow(run: Path, processor, seed: int) -> Baseline:
    """``cnn_bow`` on the run's VQA rows: 02_train's image tower architecture, freshly initialised,
    fitted on the train split with early stopping on validation (``mbmlab.training.cnn_bow.fit``)."""
    from transformers import AutoConfig

    from ..artifacts import load_json
    from ..data.collect import load_processed
    from ..data.tasks import task_examples
    from ..models.connectors import pooled_image
    from ..models.vision import new_image_encoder
    from ..training import cnn_bow

    start = time.perf_counter()
    processed = load_processed(load_json(run, "dataset.json")["path"])
    pixels, _ = fused.split_inputs(processed, processor, ("train", "validation"), ("image",))
    examples = {s: task_examples(processed.images[s], None, ["vqa"]) for s in ("train", "validation")}
    tower = new_image_encoder(AutoConfig.from_pretrained(Path(run) / "image_encoder" / "encoder"), seed)
    with torch.no_grad():
        feature_dim = pooled_image(tower.eval()(pixel_values=pixels["train"][:1])).shape[-1]
    fitted = cnn_bow.fit(tower, feature_dim, examples["train"], pixels["train"], examples["validation"],
                         pixels["validation"], seed=seed)
    return Baseline("cnn_bow", fitted.model, fitted.vocabulary, float(fitted.best_epoch), fitted.steps, time.perf_counter() - start)


def answer(baseline: Baseline, examples: list[Example], pixel_values: torch.Tensor | None, **generate_kwargs) -> list[str]:
    """The baseline's answers to the VQA ``examples`` (asked with its input taken away), in order."""
    from ..metrics.generate import generate

    asked, pixels = ablate(baseline.kind, examples, pixel_values)
    if baseline.kind == "cnn_bow":
        from ..training.cnn_bow import predict

        return predict(baseline.model, baseline.processor, asked, pixels)
    return generate(baseline.model, baseline.processor, asked, pixels, desc=baseline.kind, **generate_kwargs)


def run_all(run: Path, split, kinds, epochs: float, seed: int, batch_size: int, num_beams: int,
            patience: int = 2):
    """04's baselines on ``split`` (``mbmlab.analyses.evaluation.TestSplit``): each of ``kinds``
    trained like the fused model (early stopping on validation, at most ``epochs`` stage-2 epochs;
    0: the fused model's ``fuse_epochs``) or left untrained, and asked the VQA test questions.
    Returns ({kind: answers}, the training budget of the fused model and of each baseline)."""
    import pandas as pd

    from ..artifacts import load_json

    run = Path(run)
    fuse_params = load_json(run, "fuse.json").get("params") or load_json(run, "params.json")
    vqa_examples = [e for e in split.examples if e.task == "vqa"]
    epochs = epochs or fuse_params["fuse_epochs"]
    budgets = [{"model": "fused (03_fuse)", "tasks": ", ".join(split.tasks), "stage-2 epochs": fuse_params["fuse_epochs"],
                "optimiser steps": int(pd.read_csv(run / "fuse_history.csv")["step"].max())}]
    start = prepare(run, fuse_params) if {"blind", "image_only"} & set(kinds) else None
    answers = {}
    for kind in kinds:
        if kind == "random_init":
            trained = untrained(split.model.config, split.processor, seed)
        elif kind == "cnn_bow":
            trained = train_cnn_bow(run, split.processor, seed)
        else:
            trained = train_baseline(start, fuse_params, kind, epochs, run / "baselines", patience)
        answers[kind] = answer(trained, vqa_examples, split.pixels[split.name], batch_size=batch_size,
                               num_beams=num_beams, max_new_tokens=split.limits["vqa"], progress=False)
        budgets.append({"model": kind, "tasks": "vqa" if trained.steps else "(untrained)",
                        ("epochs (best on validation)" if kind == "cnn_bow" else "stage-2 epochs"): trained.epochs,
                        "stage-2 epoch cap": trained.cap or "", "weights kept: epoch (best validation loss)":
                            trained.best_epoch or "", "optimiser steps": trained.steps,
                        "training seconds": round(trained.seconds)})
        del trained
    del start
    return answers, pd.DataFrame(budgets).astype(object).fillna("")
