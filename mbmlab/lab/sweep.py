"""``mbmlab sweep --grid key=v1,v2 …``: the series once per combination of the grid (and per seed
with ``--seeds``), each a normal run folder, then a comparison of the runs that finished.

Every combination is validated before the first run starts (a typo in the grid costs nothing).
A failed combination is recorded with its error and the sweep goes on. Runs go one after
another; ``--jobs N`` runs N at once (on a 2-core machine two 2-thread trainings slow each
other several-fold: use it where there are cores to spare). ``reports/<stamp>-sweep/`` holds
``sweep.json`` (each combination, its run folder, status, seconds, error), ``sweep.csv`` and the
comparison page of the finished runs.
"""
from __future__ import annotations

import itertools
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import params as P
from .paths import new_run_dir, reports_dir


class SweepError(ValueError):
    """A grid that cannot run (bad syntax, unknown key, invalid value): nothing was started."""


def parse_grid(items: list[str]) -> dict[str, list]:
    """``["lm_dim=32,64", "fusion=prefix,early"]`` → ``{"lm_dim": [32, 64], "fusion": [...]}``.
    Values are JSON where they parse (numbers, booleans), else strings; a list value is written
    with ``;`` between its items (``tasks=vqa;caption,vqa``)."""
    grid: dict[str, list] = {}
    for item in items:
        if "=" not in item:
            raise SweepError(f"--grid expects key=v1,v2,…; got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key in grid:
            raise SweepError(f"{key} appears twice in the grid")
        values = []
        for text in raw.split(","):
            if ";" in text:
                values.append([_value(t) for t in text.split(";") if t])
            else:
                values.append(_value(text))
        if not values or values == [""]:
            raise SweepError(f"no values for {key}")
        grid[key] = values
    return grid


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.strip()


def combinations(grid: dict[str, list], base: dict | None = None, seeds: int = 1, first_seed: int = 0) -> list[dict]:
    """Every combination of the grid's values (the base overrides under them), times the seeds."""
    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        combo = dict(base or {}) | dict(zip(keys, values))
        for k in range(seeds):
            out.append(combo | ({"seed": combo.get("seed", first_seed) + k} if seeds > 1 else {}))
    return out


@dataclass
class Point:
    overrides: dict
    run: str | None = None
    status: str = "pending"
    seconds: float | None = None
    error: str | None = None
    label: str = field(default="")


def run_sweep(grid: dict[str, list], preset: str = "default", base: dict | None = None, seeds: int = 1, jobs: int = 1,
              *, reports: Path | None = None, log=print, run=None, **run_kwargs) -> Path:
    """Validate every combination, run them (``jobs`` at a time), write the sweep folder and the
    comparison of the finished runs; returns the sweep folder. ``run`` replaces ``run_series``
    (the tests pass a fake)."""
    from .runner import NotebookFailed, run_series

    run = run or run_series
    if not grid:
        if preset not in P.SCALING_GRIDS:
            raise SweepError("give at least one --grid key=v1,v2 (only the scaling presets bring their own grid)")
        grid = P.SCALING_GRIDS[preset]
    first_seed = P.resolve(preset, base)["seed"]
    points = [Point(c) for c in combinations(grid, base, seeds, first_seed)]
    for point in points:  # refuse the whole grid before anything runs
        try:
            P.resolve(preset, point.overrides)
        except P.ParameterError as err:
            raise SweepError(f"combination {point.overrides}: {err}") from None
        point.label = ", ".join(f"{k}={json.dumps(point.overrides[k])}" for k in [*grid, "seed"]
                                if k in point.overrides and (k != "seed" or seeds > 1))
    folder = new_run_dir(reports or reports_dir(), label=f"{preset}-sweep")
    log(f"sweep {folder}: {len(points)} runs of preset {preset}")

    def one(point: Point) -> Point:
        start = time.perf_counter()
        log(f"[sweep] {point.label}")
        try:
            out = run(preset, point.overrides, reports=reports, log=lambda *a: None, **run_kwargs)
            point.run, point.status = str(out), "ok"
        except NotebookFailed as err:
            point.run, point.status, point.error = str(err.partial.parent), "failed", str(err)
        except Exception as err:  # a broken combination must not end the sweep
            point.status, point.error = "failed", f"{type(err).__name__}: {err}"
        point.seconds = time.perf_counter() - start
        log(f"[sweep] {point.label}: {point.status} in {point.seconds:.0f} s"
            + (f" — {point.error.splitlines()[0]}" if point.error else ""))
        return point

    if jobs > 1:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, points))
    else:
        for point in points:
            one(point)
    write_summary(folder, preset, grid, points)
    finished = [Path(p.run) for p in points if p.status == "ok"]
    notes, figures = [], []
    if preset in P.SCALING_GRIDS and finished:
        from . import scaling

        try:
            table, law = scaling.fit_and_write(folder, finished)
            notes.append(f"scaling: {law.describe()}; exponent b = {law.b:.4f}; "
                         f"{len(law.left_out)} of {len(table)} points left out (off the compute frontier)")
            figures.append(folder / "scaling.png")
            log(table.round(4).to_string(index=False))
        except ValueError as err:
            notes.append(f"scaling: no fit — {err}")
        log(notes[-1])
    if len(finished) >= 2:
        from .compare import metric_table, param_table, printable, read_run, write_page

        runs = [read_run(p) for p in finished]
        failed = [f"failed: {p.label} — {(p.error or '').splitlines()[0] if p.error else ''}"
                  for p in points if p.status != "ok"]
        write_page(runs, folder, title=f"Sweep of preset {preset}: {len(finished)} of {len(points)} runs "
                                       f"finished", notes=notes + failed, figures=figures)
        log(printable(runs, param_table(runs), metric_table(runs), limit=25))
    log(f"sweep: {sum(p.status == 'ok' for p in points)} of {len(points)} runs finished; {folder / 'sweep.json'}")
    return folder


def write_summary(folder: Path, preset: str, grid: dict, points: list[Point]) -> None:
    import pandas as pd

    (folder / "sweep.json").write_text(json.dumps({"preset": preset, "grid": grid,
                                                   "points": [asdict(p) for p in points]}, indent=1, default=str))
    pd.DataFrame([{"combination": p.label, "status": p.status, "seconds": p.seconds, "run": p.run,
                   "error": (p.error or "").splitlines()[0] if p.error else ""} for p in points]) \
        .to_csv(folder / "sweep.csv", index=False)
