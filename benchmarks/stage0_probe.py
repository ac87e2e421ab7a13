"""What 03's stage 0 teaches, without the GPT: on a run whose 02_train is done, train stage 0 with
the run's 03 parameters (``--set KEY=VALUE`` to change them), print its validation exact match per
question type, then probe the reading it left: a fresh classifier head on the frozen tower and
connector's reading of each question, trained on the training rows, its epoch chosen on
validation, scored once on test, per question type. The probe says how much of an answer the
reading holds; the fused model's test score says how much of it the GPT says.

    .venv/bin/python benchmarks/stage0_probe.py --run reports/RUN [--set fuse_stage0_mirror=true …]

(the run's parameters must ask for stage 0 — ``image_connector=attend``, ``fuse_stage0_epochs`` > 0 —
or ``--set`` must; otherwise the parameters are refused as ``mbmlab run`` refuses them)
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
from torch import nn

from mbmlab.lab import params as P
from mbmlab.models.cnn_bow import Vocabulary
from mbmlab.training import fused
from mbmlab.training.reader import exact_match_by_type, prompts


@torch.no_grad()
def readings(model, processor, examples, pixels, batch: int = 256) -> torch.Tensor:
    """(rows, heads·dim): the attend connector's reading of each VQA row's image for its question."""
    base, out = model.model, []
    for start in range(0, len(examples), batch):
        rows = examples[start:start + batch]
        images, index = torch.unique(torch.tensor([e.image for e in rows]), return_inverse=True)
        embeds, lengths = base.image_prompts(*prompts(processor, rows))
        out.append(base.image_projector.attend(base.image_grid(pixels[images], index), embeds, lengths).flatten(1))
    return torch.cat(out)


def probe(features: dict, answers: dict, epochs: int, seed: int) -> tuple[float, torch.Tensor]:
    """A fresh MLP head (as stage 0's) on frozen features: (best validation accuracy, test right/wrong)."""
    torch.manual_seed(seed)
    head = nn.Sequential(nn.Linear(features["train"].shape[1], 256), nn.GELU(), nn.Linear(256, int(answers["train"].max()) + 1))
    optimiser, best, best_score = torch.optim.Adam(head.parameters(), 1e-3), None, -1.0
    for _ in range(epochs):
        order = torch.randperm(len(answers["train"]))
        for start in range(0, len(order), 64):
            chosen = order[start:start + 64]
            loss = nn.functional.cross_entropy(head(features["train"][chosen]), answers["train"][chosen])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            score = float((head(features["validation"]).argmax(-1) == answers["validation"]).float().mean())
        if score > best_score:
            best, best_score = copy.deepcopy(head.state_dict()), score
    head.load_state_dict(best)
    with torch.no_grad():
        return best_score, head(features["test"]).argmax(-1) == answers["test"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a 03 parameter changed")
    parser.add_argument("--probe-epochs", type=int, default=60)
    args = parser.parse_args()
    values = P.of_run(args.run, args.set)
    torch.manual_seed(values["seed"])
    prepared = fused.prepare(args.run, values, splits=("train", "validation", "test"))
    start = time.perf_counter()
    reading = fused.read_stage(prepared, values | {"resume": False})
    seconds = time.perf_counter() - start
    print(f"stage 0: {reading.epochs} epochs (restart {reading.restart} kept, best epoch {reading.best_epoch}), "
          f"{seconds:.0f} s; validation exact match {reading.validation_exact_match:.4f} {reading.by_type}")
    vqa = {split: [e for e in examples if e.task == "vqa"] for split, examples in prepared.examples.items()}
    vocabulary = Vocabulary([e.question for e in vqa["train"]], [e.target for e in vqa["train"]])
    prepared.model.eval()
    features = {s: readings(prepared.model, prepared.processor, vqa[s], prepared.pixel_values[s]) for s in vqa}
    answers = {s: vocabulary.answer_ids([e.target for e in vqa[s]]) for s in vqa}
    validation, right = probe(features, answers, args.probe_epochs, values["seed"])
    print(f"probe of the frozen reading: validation {validation:.4f}; test {float(right.float().mean()):.4f} "
          f"{ {k: round(v, 4) for k, v in exact_match_by_type(right, vqa['test']).items()} }")


if __name__ == "__main__":
    main()
