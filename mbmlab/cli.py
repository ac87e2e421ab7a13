"""``mbmlab``: run the notebook series headless and inspect its parameters."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import params as P

EPILOG = """\
examples:
  mbmlab run                                  # the default CPU series into reports/<run-id>/
  mbmlab run --preset tiny                    # the small series the tests use (about a minute)
  mbmlab run --set fuse_epochs=6 --set projector=linear
  mbmlab run --seeds 3                        # three seeds, then each metric's mean ± std
  mbmlab params --preset tiny                 # every parameter, its value and what it does
  mbmlab ask reports/<run> --image pic.png --question "what shape is in the image?"
  mbmlab ask reports/<run> --image pic.png --audio question.wav --speak answer.wav

Each run writes reports/<run-id>/ (never reusing a folder): the executed notebooks and their
HTML, index.html (headline metrics, parameters, environment, time per notebook), metrics.json
(flat name -> number) and figures/. Exit codes: 0 ok, 1 a notebook failed (the message names
the notebook and cell; the partial notebook is kept), 2 a bad parameter (nothing was run).
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
    ask = sub.add_parser("ask", help="ask a run's fused model about an image, typed or spoken")
    ask.add_argument("run", type=Path, help="a run folder (or its fused/ folder)")
    ask.add_argument("--image", type=Path, help="the picture to ask about")
    ask.add_argument("--question", default="", help="a typed question")
    ask.add_argument("--audio", type=Path, help="a spoken question (any format FFmpeg reads); alone: transcribe it")
    ask.add_argument("--speak", type=Path, help="also speak the answer into this WAV file (espeak-ng)")
    ask.add_argument("--beams", type=int, default=1, help="beam width (1: greedy)")
    for p in (run, params):
        p.add_argument("--preset", default="default", help=f"one of {', '.join(P.PRESETS)} (default: default)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override one parameter (repeatable); see `mbmlab params`")
    run.add_argument("--reports", type=Path, default=None, help="folder for run directories (default: reports/)")
    run.add_argument("--notebooks", type=Path, default=None, help="folder holding the series (default: notebooks/)")
    run.add_argument("--no-progress", action="store_true", help="no per-cell progress bars")
    run.add_argument("--seeds", type=int, default=1, metavar="N",
                     help="run the series N times (seed, seed+1, …) and summarise each metric as mean ± std")
    args = parser.parse_args(argv)
    if args.command == "ask":
        return _ask(args)

    try:
        values = P.resolve(args.preset, _overrides(args.overrides))
    except P.ParameterError as err:
        print(f"mbmlab: error: {err}", file=sys.stderr)
        return 2

    if args.command == "params":
        for name, value in values.items():
            spec = P.SCHEMA[name]
            allowed = f" (one of {', '.join(map(str, spec.choices))})" if spec.choices else ""
            print(f"{name:20} = {value!r:12} {spec.help}{allowed}")
        return 0

    from .runner import NotebookFailed, run_series
    from .seeds import run_seeds

    if args.seeds < 1:
        print("mbmlab: error: --seeds must be at least 1", file=sys.stderr)
        return 2
    try:
        if args.seeds > 1:
            run_seeds(args.preset, _overrides(args.overrides), args.seeds, reports=args.reports,
                      notebooks_dir=args.notebooks, progress=not args.no_progress)
        else:
            run_series(args.preset, _overrides(args.overrides), reports=args.reports, notebooks_dir=args.notebooks,
                       progress=not args.no_progress)
    except NotebookFailed as err:
        print(f"mbmlab: error: {err}", file=sys.stderr)
        return 1
    except FileNotFoundError as err:
        print(f"mbmlab: error: {err}", file=sys.stderr)
        return 2
    return 0


def _ask(args) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from .ask import AskError, ask, load, read_audio, read_image, speak

    try:
        image = read_image(args.image) if args.image else None
        audio = read_audio(args.audio) if args.audio else None
        model, processor = load(args.run)
        answer = ask(model, processor, image=image, audio=audio, question=args.question, num_beams=args.beams)
        print(f"{answer.task}: {answer.text}")
        if args.speak:
            print(f"spoken answer: {speak(answer.text, args.speak)}")
    except AskError as err:
        print(f"mbmlab: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
