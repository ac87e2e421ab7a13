"""02's image alignment alone, on a run whose 02_train is done: the run's data, tokenizer and
pretrained LM, the image tower aligned again from its initialisation with the run's 02
parameters (``--set KEY=VALUE`` to change them, ``--seeds`` for other initialisations on the same
data). Prints, per seed, the validation recall@1 after each epoch, the epoch kept (the best
validation recall@1, as 02 keeps it) and the kept tower's test recall@1 — so alignment settings are
chosen on validation, with the test read once for the chosen one.

    .venv/bin/python benchmarks/image_alignment.py --run reports/RUN [--seeds 0 1 2] [--set align_epochs=12 …]

Writes nothing into the run: the towers are aligned in a temporary folder.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mbmlab import artifacts
from mbmlab.data.collect import load_processed
from mbmlab.lab import params as P
from mbmlab.training import align


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a 02 parameter changed")
    parser.add_argument("--seeds", type=int, nargs="+", help="initialisation seeds (default: the run's seed)")
    args = parser.parse_args()
    values = P.of_run(args.run, args.set)
    artifacts.check_run_models(args.run, "02_train")  # a damaged lm/ refused by name, as 03 refuses it
    dataset = load_processed(artifacts.load_json(args.run, "dataset.json")["path"]).images
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lm, tokenizer = AutoModelForCausalLM.from_pretrained(args.run / "lm"), AutoTokenizer.from_pretrained(args.run / "lm")
    for seed in args.seeds or [values["seed"]]:
        params = values | {"seed": seed, "resume": False}
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            (before, after), history = align.align_image_tower(Path(folder), lm, tokenizer, dataset, params,
                                                               align.align_settings(params))
            seconds = time.perf_counter() - start
        evaluations = history.dropna(subset=["eval_recall@1"])
        curve = " ".join(f"{r:.3f}" for r in evaluations["eval_recall@1"])
        best = evaluations["eval_recall@1"].idxmax()
        print(f"seed {seed}: validation recall@1 by epoch {curve}; kept epoch {evaluations.loc[best, 'epoch']:g} "
              f"({evaluations.loc[best, 'eval_recall@1']:.3f}, loss {evaluations.loc[best, 'eval_loss']:.4f}); test recall@1 {after['recall@1']:.3f} "
              f"[{after['recall@1/ci95_low']:.3f}, {after['recall@1/ci95_high']:.3f}], @5 {after['recall@5']:.3f}; "
              f"{seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
