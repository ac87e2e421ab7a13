"""Where a training step of 03's stage 2 goes, on a run whose 02_train is done, with the run's own
03 parameters (``--set KEY=VALUE`` to change them) and the batches of stage 2's first epoch (the
length-grouped sampler at the run's seed, ``fuse_batch_images`` units a batch):

1. padding: the share of the epoch's batches' token positions that are padding, the batch widths
   (5th, 50th, 95th percentile) and the rows per task;
2. per step, mean of ``--steps``: collation, forward — and within it the image tower, the audio
   tower and the GPT —, backward, AdamW;
3. the operators that took the most CPU time over ``--profile-steps`` more steps (torch.profiler).

    .venv/bin/python benchmarks/fuse_step_profile.py --run reports/RUN [--steps 30] [--profile-steps 10]

What docs/results.md's "Where 03's step time goes" quotes. The model is 03's freshly initialised
one (as 03 builds it from 02's towers and LM): step times do not depend on what it has learned.
"""
from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import numpy as np
import torch

from mbmlab import hardware
from mbmlab.lab import params as P
from mbmlab.training import fused
from mbmlab.training.trainer import LengthGroupedEpochSampler

PARTS = ("vision_tower", "audio_tower", "language_model")


def padding_summary(masks: list[torch.Tensor]) -> dict:
    """Over batches' attention masks (rows × width, 1 for a real token): positions, real tokens, the
    padding share 1 − real / positions, and the widths' 5th, 50th and 95th percentiles."""
    positions = sum(m.numel() for m in masks)
    real = sum(int(m.sum()) for m in masks)
    widths = [m.shape[1] for m in masks]
    return {"batches": len(masks), "rows": sum(m.shape[0] for m in masks), "positions": positions, "real": real,
            "padding_share": 1 - real / positions,
            "width_p5_p50_p95": [float(w) for w in np.percentile(widths, [5, 50, 95])]}


def epoch_batches(units, batch_units: int, seed: int) -> list[list[int]]:
    order = list(iter(LengthGroupedEpochSampler(units.lengths, batch_units, seed)))
    return [order[i:i + batch_units] for i in range(0, len(order), batch_units)]


def step_times(model, units, collator, batches, learning_rate: float) -> dict[str, float]:
    """Mean seconds per step of each phase, and of each part's forward (hooks around it)."""
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    spent = collections.defaultdict(float)
    for name in PARTS:
        part = getattr(model.model, name, None)
        if part is not None:
            part.register_forward_pre_hook(lambda *_, n=name: spent.__setitem__(n, spent[n] - time.perf_counter()))
            part.register_forward_hook(lambda *_, n=name: spent.__setitem__(n, spent[n] + time.perf_counter()))
    def timed(phase, work):
        start = time.perf_counter()
        result = work()
        spent[phase] += time.perf_counter() - start
        return result

    for chosen in batches:
        batch = timed("collate", lambda: collator([units[i] for i in chosen]))
        out = timed("forward", lambda: model(**batch))
        timed("backward", out.loss.backward)
        timed("adamw", lambda: (optimiser.step(), optimiser.zero_grad()))
    return {name: spent[name] / len(batches) for name in ("collate", "forward", *PARTS, "backward", "adamw")
            if name in spent}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a 03 parameter changed")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--profile-steps", type=int, default=10)
    args = parser.parse_args(argv)
    values = P.for_notebook("03_fuse", P.of_run(args.run, args.set))
    threads = hardware.set_threads()
    prepared = fused.prepare(args.run, values)
    model, units, collator = prepared.model, prepared.train_set, prepared.collator
    batches = epoch_batches(units, values["fuse_batch_images"], values["seed"])
    print(f"{args.run.name}: stage 2's first epoch, {len(units)} units, {units.rows_per_epoch()} rows, "
          f"{len(batches)} batches of {values['fuse_batch_images']} units; {threads} torch threads; "
          f"fp32 matmul {hardware.matmul_peak() / 1e9:.0f} GFLOP/s")
    rows = collections.Counter(row[0] for i in range(len(units)) for row in units[i]["rows"])
    summary = padding_summary([collator([units[i] for i in chosen])["attention_mask"] for chosen in batches])
    print(f"padding: {100 * summary['padding_share']:.1f}% of {summary['positions']:,} token positions "
          f"({summary['rows']:,} rows, {summary['rows'] / summary['batches']:.1f} a batch); widths p5/p50/p95 "
          f"{summary['width_p5_p50_p95']}; rows by task {dict(rows)}")
    fused.set_trainable(model, values["fuse_train_parts"])
    model.train()
    times = step_times(model, units, collator, batches[:args.steps], values["fuse_learning_rate"])
    print(f"per step, mean of {min(args.steps, len(batches))}: " +
          " · ".join(f"{name} {1000 * t:.1f} ms" for name, t in times.items()) +
          f" (the towers and the GPT are inside forward)")
    if args.profile_steps:
        from torch.profiler import ProfilerActivity, profile

        optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=values["fuse_learning_rate"])
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for chosen in batches[args.steps:args.steps + args.profile_steps]:
                out = model(**collator([units[i] for i in chosen]))
                out.loss.backward()
                optimiser.step()
                optimiser.zero_grad()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
