"""03_fuse's fusion training as a script, for ``accelerate launch`` on many processes, GPUs or nodes::

    accelerate launch --multi_gpu --num_processes 8 -m mbmlab.lab.launch_fuse --run reports/<run> --out runs/fused --bf16

The parameters are the default preset's, with ``--params`` JSON overriding them; the code path is
``mbmlab.training.fused`` (the notebook's own).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..training.fused import plan as fused_plan, prepare, train_stages
from . import params as P


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mbmlab.lab.launch_fuse", description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a run folder that 02_train has filled (lm/, image_encoder/, …)")
    p.add_argument("--out", required=True, help="output folder: checkpoints, fused/ and fuse.json")
    p.add_argument("--params", default="", help="JSON of 03_fuse parameters to override (default: the preset's)")
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """The fusion training of 03_fuse as a script; the Trainer picks up the process group that
    ``accelerate launch`` sets up (gloo on CPUs, NCCL on GPUs)."""
    args = parse(argv)
    values = P.resolve("default", json.loads(args.params) if args.params else {})
    values["bf16"] = "true" if args.bf16 else values["bf16"]
    out = Path(args.out)
    if values["fuse_stage0_epochs"] > 0:  # its classifier loop is one process's; not silently skipped
        raise SystemExit("launch_fuse does not run 03's stage 0 (fuse_stage0_epochs > 0): run 03_fuse for it, "
                         "or pass fuse_stage0_epochs=0")
    built = prepare(Path(args.run), values, splits=("train",))
    plan = fused_plan(values)
    trainers = train_stages(built.model, built.train_set, built.collator, plan, out / "checkpoints",
                            batch_size=values["fuse_batch_images"], seed=values["seed"], bf16=values["bf16"],
                            resume=args.resume, max_steps=args.max_steps)
    last = list(trainers.values())[-1]
    import torch.distributed as dist

    summary = {"world_size": last.args.world_size, "process_index": last.args.process_index,
               "backend": dist.get_backend() if dist.is_initialized() else None,
               "steps": {name: t.state.global_step for name, t in trainers.items()},
               "train_loss": {name: t.state.log_history[-1].get("train_loss") for name, t in trainers.items()},
               "epoch_kept": "the last (choosing stage 2's epoch on validation, fuse_keep_best_epoch, is 03_fuse's)"}
    if last.is_world_process_zero():
        built.model.save_pretrained(out / "fused")
        built.processor.save_pretrained(out / "fused")
        (out / "fuse.json").write_text(json.dumps(summary, indent=1))
    print(f"rank {summary['process_index']} of {summary['world_size']} (pid {os.getpid()}): {summary}", flush=True)
    return summary


if __name__ == "__main__":
    main()
