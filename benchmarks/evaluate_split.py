"""A finished run's 04_evaluate again, on another split: for choosing between runs already made
(a parameter's two arms, seeds) on validation after their test numbers were written — choose on
validation, report test once. The run is left as it was: its folder is copied into a new
subfolder ``on-<split>/`` (01–03's models and records, the metrics they wrote; none of 04's
or 05's outputs), and 04 runs there through papermill with the run's own parameters
(``--set`` overrides them), ``evaluate_split`` set to the split. Its metrics keep their names;
``params.json`` of the copy says the split.

    .venv/bin/python benchmarks/evaluate_split.py --run reports/RUN [--split validation] \\
        [--set baselines=[] --set explain_images=0 --set pocketsphinx_clips=0]
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from mbmlab.artifacts import check_run_models
from mbmlab.lab import params as P
from mbmlab.lab.kernels import execute_notebook
from mbmlab.lab.report import metric_notebook

ROOT = Path(__file__).resolve().parents[1]
# what 01–03 leave that 04 may read (its model folders, the data and fusion records); none of 04's or 05's outputs
KEPT = {"dataset.json", "data_card.json", "fuse.json", "params.json", "run.json", "lm", "image_encoder",
        "audio_encoder", "fused"}


def copy_for(run: Path, split: str) -> Path:
    """``run/on-<split>/``: what 04 reads, the upstream metrics only; refused if it exists."""
    out = run / f"on-{split}"
    if out.exists():
        raise SystemExit(f"{out} exists: remove it, or keep it and read its metrics.json")

    out.mkdir()
    for item in run.iterdir():
        if item.name in KEPT or item.name.endswith("_history.csv"):
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, out / item.name)
    metrics = json.loads((run / "metrics.json").read_text())
    upstream = {k: v for k, v in metrics.items() if metric_notebook(k, list(P.NOTEBOOKS)) in P.NOTEBOOKS[:3]}
    (out / "metrics.json").write_text(json.dumps(upstream, indent=1))  # what 01–03 recorded
    return out


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a run folder whose 03_fuse is done")
    parser.add_argument("--split", choices=("validation", "test"), default="validation")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a 04 parameter")
    args = parser.parse_args(argv)
    import pandas as pd

    run = args.run.resolve()
    if not (run / "fused").is_dir():
        raise SystemExit(f"{run} has no fused/: run 03_fuse on it first")
    check_run_models(run, P.NB_FUSE)
    values = P.for_notebook(P.NB_EVALUATE, P.of_run(run, [*args.set, f"evaluate_split={args.split}"]))
    out = copy_for(run, args.split)
    (out / "params.json").write_text(json.dumps(json.loads((run / "params.json").read_text()) | values, indent=1))
    execute_notebook(ROOT / "notebooks" / f"{P.NB_EVALUATE}.ipynb", out / f"{P.NB_EVALUATE}.ipynb",
                     parameters={"run_dir": str(out), **values}, progress_bar=False, cwd=str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("vqa/exact_match", "spoken_vqa/cascade_minus_typed/exact_match", "asr/wer", "caption/CIDEr"):
        if name in metrics:
            low, high = metrics.get(f"{name}/ci95_low"), metrics.get(f"{name}/ci95_high")
            interval = f" [{low:.4f}, {high:.4f}]" if low is not None and high is not None else ""
            print(f"{args.split} {name}: {metrics[name]:.4f}{interval}")
    if (out / "vqa_predictions.csv").exists():  # by question type (a type may hold a slash: yes/no)
        qa = pd.read_csv(out / "vqa_predictions.csv", keep_default_na=False)
        by_type = qa.groupby("question_type")["correct"].mean()
        print(f"{args.split} vqa/exact_match by type: " + ", ".join(f"{t} {v:.4f}" for t, v in by_type.items()))
    print(f"metrics: {out / 'metrics.json'}")
    return out


if __name__ == "__main__":
    main()
