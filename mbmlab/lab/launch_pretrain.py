"""GPT-2 pretraining as a script, for ``accelerate launch`` on many processes, GPUs or nodes.

The same code path as ``02_train`` (tokenizer, model, ``TextLines``, ``LMCollator``, the HF
``Trainer``); the Trainer reads the distributed setup that ``accelerate launch`` exports, so one
process per device trains with DDP (gloo on CPUs, NCCL on GPUs)::

    # 2 processes on one machine without GPUs (the flag picks the multi-process launcher; each
    # process then trains on the CPU and they talk over gloo)
    accelerate launch --multi_gpu --num_processes 2 -m mbmlab.lab.launch_pretrain --dataset data/processed/<name> --out runs/lm
    # 8 GPUs
    accelerate launch --multi_gpu --num_processes 8 -m mbmlab.lab.launch_pretrain --dataset ... --out ... --bf16

Every process builds the same tokenizer (BPE training is deterministic); the main process saves
the model, tokenizer and a ``pretrain.json`` with the world size, steps and final losses.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mbmlab.lab.launch_pretrain", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, help="a processed dataset folder written by 01_collect")
    p.add_argument("--out", required=True, help="output folder (checkpoints, model, pretrain.json)")
    p.add_argument("--tokenizer", default="", help="pretrained tokenizer name or path; empty: train byte-level BPE")
    p.add_argument("--model", default="", help="pretrained LM name or path; empty: a new GPT-2")
    p.add_argument("--vocab-size", type=int, default=400)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--batch-size", type=int, default=64, help="per process")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CPU or GPU)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    from ..data.collect import load_processed
    from ..models import text
    from ..training.language_model import language_model, pretrain, tokenizer_for
    from ..training.trainer import LMCollator, TextLines

    images = load_processed(args.dataset).images
    lines = text.corpus_lines(images["train"])
    tokenizer = tokenizer_for(lines, args.tokenizer, args.vocab_size)
    model = language_model(tokenizer, args.model, args.dim, args.layers, args.heads, args.seed)
    out = Path(args.out)
    trainer = pretrain(model, tokenizer, lines, text.corpus_lines(images["validation"]), out / "checkpoints",
                       epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
                       bf16=args.bf16, resume=args.resume, max_steps=args.max_steps)
    targs = trainer.args
    import torch.distributed as dist

    summary = {"world_size": targs.world_size, "process_index": targs.process_index,
               "backend": dist.get_backend() if dist.is_initialized() else None,
               "global_steps": trainer.state.global_step,
               "train_loss": trainer.state.log_history[-1].get("train_loss"),
               "eval_loss": next((r["eval_loss"] for r in reversed(trainer.state.log_history) if "eval_loss" in r), None)}
    # perplexity as defined (exp of total NLL over total predicted tokens), not exp(eval_loss)
    from ..metrics.perplexity import perplexity

    summary["perplexity"] = perplexity(model, TextLines(text.corpus_lines(images["validation"]), tokenizer),
                                       LMCollator(tokenizer.pad_token_id))["perplexity"]
    if trainer.is_world_process_zero():
        trainer.save_model(str(out / "lm"))
        tokenizer.save_pretrained(out / "lm")
        (out / "pretrain.json").write_text(json.dumps(summary, indent=1))
    print(f"rank {targs.process_index} of {targs.world_size} (pid {os.getpid()}): {summary}", flush=True)
    return summary


if __name__ == "__main__":
    main()
