"""``mbmlab``: run the notebook series headless and inspect its parameters."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..names import LANGUAGES
from . import params as P

EPILOG = """\
examples:
  mbmlab run                                  # the default CPU series into reports/<run-id>/
  mbmlab run --preset tiny                    # the small series the tests use (about a minute)
  mbmlab run --set fuse_epochs=6 --set projector=linear
  mbmlab run --seeds 3                        # three seeds, then each metric's mean ± std
  mbmlab run --resume reports/<run>           # continue a failed or interrupted run where it stopped
  mbmlab run --resume reports/<run> --set fuse_learning_rate=3e-4   # ... with a parameter changed
  mbmlab run --until 03_fuse                  # train only; `mbmlab run --resume reports/<run>` evaluates later
  mbmlab run --no-reuse                       # recompute 01-03 even where an earlier run's outputs match
  mbmlab params --preset tiny                 # every parameter, its value and what it does
  mbmlab compare reports/<run-a> reports/<run-b>   # parameters that differ, metrics with intervals
  mbmlab sweep --preset tiny --grid fuse_epochs=2,4 --grid projector=linear,mlp2x_gelu   # 4 runs, compared
  mbmlab sweep --preset tiny --grid fusion=prefix,early --seeds 2 --num-cpus 1 --address HEAD:6379   # on a Ray cluster
  mbmlab sweep --resume reports/<sweep>       # only the combinations that did not finish
  mbmlab tune --preset tiny --space fuse_learning_rate=1e-4:1e-2:log --metric vqa/exact_match --trials 6 --parallel 2
  mbmlab ask reports/<run> --image pic.png --question "what shape is in the image?"
  mbmlab ask reports/<run> --image pic.png --audio question.wav --speak answer.wav
  mbmlab ask reports/<run> --image pic.png --translate "a red circle" --to zh --speak zh.wav
  mbmlab ask reports/<run> --image pic.png --question "图中是什么形状？" --lang zh   # answered in Chinese

Each run writes reports/<run-id>/ (never reusing a folder): the executed notebooks and their
HTML, index.html (headline metrics, parameters, environment, time per notebook), metrics.json
(flat name -> number) and figures/. 01_collect, 02_train and 03_fuse are keyed by their
parameters, inputs and code: a run whose key matches an earlier one copies that run's outputs
from data/cache/runs/ instead of recomputing them (run.json and index.html say from where). Exit codes: 0 ok, 1 a notebook failed or its kernel died
(the message names the notebook, the cell and the cause; the partial notebook is kept), 2 a bad
parameter (nothing was run) or a run folder another process is writing, 130 interrupted (Ctrl-C).
"""


def _overrides(pairs: list[str]) -> dict:
    return dict(P.parse_override(p) for p in pairs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mbmlab", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the series (01_collect … 05_bias; fusion-study: 01, 02, 06) with papermill and write the report",
                         epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    params = sub.add_parser("params", help="list parameters with their values under a preset")
    comp = sub.add_parser("compare", help="runs side by side: differing parameters, metrics with intervals, "
                                          "which differences exceed them (HTML + printed table)")
    comp.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="two or more run folders")
    comp.add_argument("--reports", type=Path, default=None, help="where the comparison folder goes (default: reports/)")
    sweep = sub.add_parser("sweep", help="the series for every combination of a grid, then their comparison")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                       help="a parameter and its values (repeatable: the grid is their product)")
    sweep.add_argument("--resume", type=Path, default=None, metavar="SWEEP",
                       help="an earlier sweep folder: run only its combinations that did not finish")
    sweep.add_argument("--until", default=None, metavar="NOTEBOOK", help="each run stops after this notebook")
    tune = sub.add_parser("tune", help="search parameters with Optuna (TPE): trials on the validation split, "
                                        "in parallel on Ray, then the best once on test")
    tune.add_argument("--space", action="append", default=[], metavar="KEY=LOW:HIGH[:log]",
                      help="a parameter and its range (or KEY=a,b,c choices); repeatable")
    tune.add_argument("--metric", default="", help="the metrics.json name to optimise (say vqa/exact_match)")
    tune.add_argument("--direction", default="max", choices=("max", "min"))
    tune.add_argument("--trials", type=int, default=10, help="finished trials to reach (default 10)")
    tune.add_argument("--parallel", type=int, default=1, help="trials at once (default 1)")
    tune.add_argument("--seed", dest="sampler_seed", type=int, default=0, help="the sampler's seed (default 0)")
    tune.add_argument("--no-final", action="store_true", help="skip the final run of the best on the test split")
    tune.add_argument("--resume", type=Path, default=None, metavar="TUNE",
                      help="continue an interrupted tune folder (its space, metric and trials)")
    ask = sub.add_parser("ask", help="ask a run's fused model about an image, typed or spoken")
    ask.add_argument("run", type=Path, help="a run folder (or its fused/ folder)")
    ask.add_argument("--image", type=Path, help="the picture to ask about")
    ask.add_argument("--question", default="", help="a typed question")
    ask.add_argument("--audio", type=Path, help="a spoken question (any format FFmpeg reads); alone: transcribe it")
    ask.add_argument("--speak", type=Path, help="also speak the answer into this WAV file (espeak-ng, 16 kHz mono; "
                     "in the --to/--lang language when one is given)")
    ask.add_argument("--translate", default="", metavar="TEXT",
                     help="with --image and --to: translate this English text about the picture")
    ask.add_argument("--to", "--lang", default="", metavar="LANGUAGE", dest="to",
                     help=f"the language to translate into ({', '.join(LANGUAGES)}; the model must have been trained "
                          "on it); with --audio alone: translate the spoken caption; with --question: the question's "
                          "and the answer's language (an English question is translated by the grammar for zh)")
    ask.add_argument("--beams", type=int, default=1, help="beam width (1: greedy)")
    ask.add_argument("--ctc-weight", type=float, default=P.SCHEMA["asr_ctc_weight"].default,
                     help="the CTC head's share when transcribing (joint decoding, as 04's asr_ctc_weight); 0: the GPT alone")
    ask.add_argument("--end-to-end", action="store_true",
                     help="answer a spoken question from the clip directly, not from the model's transcript of it")
    for p in (run, params, sweep, tune):
        p.add_argument("--preset", default="default", help=f"one of {', '.join(P.PRESETS)} (default: default)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override one parameter (repeatable); see `mbmlab params`")
    for p in (run, sweep, tune):
        p.add_argument("--num-cpus", type=float, default=None, metavar="N",
                       help="CPU cores each run asks Ray for (default: every core of this machine, so runs here go "
                            "one after another; on a cluster, the cores of one worker's share)")
        p.add_argument("--num-gpus", type=float, default=0, metavar="N", help="GPUs each run asks Ray for (default 0)")
        p.add_argument("--address", default=None, metavar="HOST:PORT",
                       help="join this Ray cluster (default: RAY_ADDRESS, else a Ray instance of its own)")
    for p in (run, sweep, tune):
        p.add_argument("--reports", type=Path, default=None, help="folder for run directories (default: reports/)")
        p.add_argument("--notebooks", type=Path, default=None, help="folder holding the series (default: notebooks/)")
        p.add_argument("--no-progress", action="store_true", help="no per-cell progress bars")
        p.add_argument("--cell-timeout", type=int, default=None, metavar="SECONDS",
                       help="fail a run when one cell runs longer than this (default: no limit)")
        p.add_argument("--no-reuse", action="store_true",
                       help="run every notebook even where an earlier run's outputs have the same key "
                            "(parameters, inputs, code); the cache under data/cache/runs/ is refreshed")
    sweep.add_argument("--seeds", type=int, default=1, metavar="N", help="each combination with N seeds")
    run.add_argument("--resume", type=Path, default=None, metavar="RUN",
                     help="continue a failed or interrupted run folder from the notebook that did not finish "
                          "(its trainings from their newest checkpoints), with its own parameters; with --set, "
                          "changed ones: every notebook from the first that reads one runs again")
    run.add_argument("--from", dest="start_from", type=Path, default=None, metavar="RUN",
                     help="start a new run with RUN's preset and parameters, changed by --set: the notebooks before "
                          "the first that reads a changed parameter are copied from RUN as they are (whatever code "
                          "made them), the rest run; run.json and index.html say what was taken")
    run.add_argument("--until", default=None, metavar="NOTEBOOK",
                     help="stop after this notebook (say 03_fuse); the run is marked stopped and --resume runs the rest")
    run.add_argument("--seeds", type=int, default=1, metavar="N",
                     help="run the series N times (seed, seed+1, …) and summarise each metric as mean ± std")
    args = parser.parse_args(argv)
    if args.command == "ask":
        return _ask(args)
    if args.command == "compare":
        from .compare import CompareError, compare

        try:
            compare(args.runs, args.reports)
        except CompareError as err:
            print(f"mbmlab: error: {err}", file=sys.stderr)
            return 2
        return 0

    try:
        values = P.resolve(args.preset, _overrides(args.overrides))
    except P.ParameterError as err:
        print(f"mbmlab: error: {err}", file=sys.stderr)
        return 2

    if args.command == "tune":
        return _tune(args)

    if args.command == "sweep":
        from .sweep import SweepError, SweepInterrupted, parse_grid, run_sweep

        if args.seeds < 1 or (args.num_cpus is not None and args.num_cpus <= 0) or args.num_gpus < 0:
            print("mbmlab: error: --seeds must be at least 1, --num-cpus above 0, --num-gpus not negative",
                  file=sys.stderr)
            return 2
        if args.resume is not None and (args.grid or args.overrides or args.preset != "default" or args.seeds > 1):
            print("mbmlab: error: --resume runs an earlier sweep's own grid; give no --grid, --set, --preset or --seeds",
                  file=sys.stderr)
            return 2
        extra = {"until": args.until} if args.until else {}
        try:
            folder = run_sweep(parse_grid(args.grid), args.preset, _overrides(args.overrides), args.seeds,
                               num_cpus=args.num_cpus, num_gpus=args.num_gpus, address=args.address,
                               resume=args.resume, reports=args.reports, notebooks_dir=args.notebooks,
                               progress=not args.no_progress, cell_timeout=args.cell_timeout,
                               reuse=not args.no_reuse, **extra)
        except SweepError as err:
            print(f"mbmlab: error: {err}", file=sys.stderr)
            return 2
        except SweepInterrupted as err:
            print(f"mbmlab: {err}", file=sys.stderr)
            return 130
        points = json.loads((folder / "sweep.json").read_text())["points"]
        return 0 if all(p["status"] == "ok" for p in points) else 1

    if args.command == "params":
        for name, value in values.items():
            spec = P.SCHEMA[name]
            allowed = f" (one of {', '.join(map(str, spec.choices))})" if spec.choices else ""
            print(f"{name:20} = {value!r:12} {spec.help}{allowed}")
        return 0

    from .runner import NotebookFailed, RunInterrupted, RunLocked, run_series
    from .multiseed import SeedsFailed, run_seeds

    if args.seeds < 1:
        print("mbmlab: error: --seeds must be at least 1", file=sys.stderr)
        return 2
    if args.until is not None and args.seeds > 1:
        print("mbmlab: error: --until stops one run; it does not combine with --seeds", file=sys.stderr)
        return 2
    if args.resume is not None and (args.seeds > 1 or args.preset != "default"):
        print("mbmlab: error: --resume continues a run with its own preset; give no --preset or --seeds "
              "(--set changes a parameter: the notebooks that read it run again)", file=sys.stderr)
        return 2
    if args.start_from is not None and (args.resume is not None or args.seeds > 1 or args.preset != "default"):
        print("mbmlab: error: --from starts one new run with RUN's own preset; give no --resume, --preset or --seeds "
              "(--set changes a parameter: the notebooks from the first that reads it run)", file=sys.stderr)
        return 2
    try:
        if args.seeds > 1:
            run_seeds(args.preset, _overrides(args.overrides), args.seeds, reports=args.reports,
                      notebooks_dir=args.notebooks, progress=not args.no_progress, reuse=not args.no_reuse,
                      num_cpus=args.num_cpus, num_gpus=args.num_gpus, address=args.address)
        else:
            run_series(args.preset, _overrides(args.overrides), reports=args.reports, notebooks_dir=args.notebooks,
                       progress=not args.no_progress, cell_timeout=args.cell_timeout, resume=args.resume,
                       reuse=not args.no_reuse, until=args.until, start_from=args.start_from)
    except (NotebookFailed, SeedsFailed) as err:
        print(f"mbmlab: error: {err}", file=sys.stderr)
        return 1
    except RunInterrupted as err:
        print(f"mbmlab: {err}", file=sys.stderr)
        return 130
    except (FileNotFoundError, RunLocked, ValueError) as err:
        print(f"mbmlab: error: {err}", file=sys.stderr)
        return 2
    return 0


def _tune(args) -> int:
    from .tune import TuneError, TuneInterrupted, parse_space, run_tune

    if args.resume is not None and (args.space or args.overrides or args.metric or args.preset != "default"):
        print("mbmlab: error: --resume continues an earlier tune with its own space and metric; give no --space, "
              "--set, --metric or --preset", file=sys.stderr)
        return 2
    try:
        space = parse_space(args.space, args.preset) if args.resume is None else None
        folder = run_tune(space, args.metric, args.direction, args.trials, args.preset, _overrides(args.overrides),
                          parallel=args.parallel, seed=args.sampler_seed, num_cpus=args.num_cpus,
                          num_gpus=args.num_gpus, address=args.address, resume=args.resume,
                          final=not args.no_final, reports=args.reports, notebooks_dir=args.notebooks,
                          progress=not args.no_progress, cell_timeout=args.cell_timeout, reuse=not args.no_reuse)
    except (TuneError, P.ParameterError) as err:
        print(f"mbmlab: error: {err}", file=sys.stderr)
        return 2
    except TuneInterrupted as err:
        print(f"mbmlab: {err}", file=sys.stderr)
        return 130
    best = json.loads((folder / "best.json").read_text())
    return 0 if best.get("final_status", "ok") == "ok" else 1


def _ask(args) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ..apps.ask import AskError, ask, load_fused, read_audio, read_image, speak, task_for

    try:
        if args.to or args.translate:  # a language is checked before anything is read or loaded
            task_for(args.image is not None, args.audio is not None, bool(args.question), bool(args.translate),
                     args.to)
        image = read_image(args.image) if args.image else None
        audio = read_audio(args.audio) if args.audio else None
        model, processor = load_fused(args.run)
        if not 0.0 <= args.ctc_weight <= 1.0:
            raise AskError(f"--ctc-weight is a share in [0, 1], got {args.ctc_weight}")
        answer = ask(model, processor, image=image, audio=audio, question=args.question, num_beams=args.beams,
                     ctc_weight=args.ctc_weight, cascade=not args.end_to_end, translate=args.translate,
                     language=args.to)
        print(f"{answer.task}: {answer.text}")
        if answer.heard is not None:
            print(f"heard: {answer.heard}")
        if answer.asked is not None:
            print(f"asked as: {answer.asked}")
        if args.speak:
            print(f"spoken answer: {speak(answer.text, args.speak, args.to)}")
    except AskError as err:
        print(f"mbmlab: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
