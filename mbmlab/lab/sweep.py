"""``mbmlab sweep --grid key=v1,v2 …``: the series once per combination of the grid (and per seed
with ``--seeds``), each a normal run folder, then a comparison of the runs that finished.

Every combination is validated before the first run starts (a typo in the grid costs nothing).
Each run is a Ray task asking for ``--num-cpus`` cores (default: every core of this machine, so
locally runs go one after another — on 2 cores two 2-thread trainings slow each other several-fold)
and ``--num-gpus``; Ray places as many at once as the machines' resources allow. Without
``--address`` (or ``RAY_ADDRESS``) the sweep starts a Ray instance of its own on this machine and
stops it at the end; with it, it joins a running cluster (``ray start --head`` / ``ray start
--address …``), and first checks that every node can read and write the reports folder (on a
cluster it must be a filesystem every node mounts).

A run whose worker process dies (a lost node, an out-of-memory kill) is retried once by Ray, then
recorded as failed with the cause; a run that raises (a notebook failed) is recorded as failed at
once with its partial run folder — the same parameters would fail again. The sweep goes on either
way. ``reports/<stamp>-sweep/`` holds ``sweep.json`` (each combination, its run folder, status,
seconds, the Ray node it ran on, attempts, error), rewritten as each run ends, ``sweep.csv`` and
the comparison page of the finished runs; ``mbmlab sweep --resume <sweep folder>`` runs only the
combinations that did not finish (failed, or never ended because the sweep was interrupted).
"""
from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import params as P
from .paths import new_run_dir, project_root, reports_dir

#: A JSON object of overrides; a combination that has them kills its own worker process before
#: running (as a lost node would), every attempt. For testing the retry path (tests/lab/test_ray_cluster.py).
KILL_ENV = "MBMLAB_SWEEP_KILL"
#: Environment a run's task carries to the Ray worker, where set on the machine that starts the sweep.
FORWARDED_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "MKL_DYNAMIC", "OMP_DYNAMIC", "MKL_CBWR",
                 "MLFLOW_TRACKING_URI", "MBMLAB_MLFLOW", "PYTHONPATH", "MBMLAB_CACHE")


class SweepInterrupted(RuntimeError):
    """Ctrl-C during a sweep: the runs in flight were stopped, ``sweep.json`` says which finished."""


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
    node: str | None = None  # the Ray node id the run executed on
    host: str | None = None  # that node's IP address
    attempts: int = 0


def run_sweep(grid: dict[str, list], preset: str = "default", base: dict | None = None, seeds: int = 1, *,
              num_cpus: float | None = None, num_gpus: float = 0, address: str | None = None,
              resume: Path | None = None, reports: Path | None = None, log=print, run=None,
              **run_kwargs) -> Path:
    """Validate every combination, run each as a Ray task, write the sweep folder and the
    comparison of the finished runs; returns the sweep folder. ``resume``: an earlier sweep folder;
    only its combinations that did not finish run (its grid, preset and options are kept).
    ``run`` replaces ``run_series`` (the tests pass a fake; it must be importable on the workers)."""
    from .runner import run_series

    run = run or run_series
    if reports is None and resume is not None:  # the runs go beside the sweep folder, as the first time
        reports = Path(resume).resolve().parent
    reports = Path(reports or reports_dir()).resolve()
    run_kwargs = {k: v for k, v in run_kwargs.items() if v is not None}
    if run_kwargs.get("notebooks_dir"):
        run_kwargs["notebooks_dir"] = Path(run_kwargs["notebooks_dir"]).resolve()
    if resume is not None:
        folder, preset, grid, points, saved = _load(Path(resume))
        run_kwargs = saved | run_kwargs
        todo = [p for p in points if p.status != "ok"]
        for p in todo:
            p.run, p.status, p.seconds, p.error, p.node, p.host, p.attempts = None, "pending", None, None, None, None, 0
        log(f"sweep {folder}: resuming {len(todo)} of {len(points)} runs (the others finished)")
    else:
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
        folder = new_run_dir(reports, label=f"{preset}-sweep")
        todo = points
        log(f"sweep {folder}: {len(points)} runs of preset {preset}")
    saved = {k: v for k, v in run_kwargs.items() if k in ("until", "cell_timeout") and v is not None}
    write_summary(folder, preset, grid, points, saved)
    from .tracking import prepare

    prepare(reports, folder.name, log=log)  # one MLflow experiment per sweep, named after its folder
    try:
        execute(todo, preset, folder, run, run_kwargs | {"reports": reports, "experiment": folder.name},
                num_cpus=num_cpus, num_gpus=num_gpus, address=address, log=log,
                on_done=lambda: write_summary(folder, preset, grid, points, saved))
    except KeyboardInterrupt:
        for point in todo:
            if point.status in ("pending", "submitted"):
                point.status = "interrupted"
        write_summary(folder, preset, grid, points, saved)
        raise SweepInterrupted(f"sweep interrupted: {sum(p.status == 'ok' for p in points)} of {len(points)} runs "
                               f"finished; continue with `mbmlab sweep --resume {folder}`") from None
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
        from .compare import CompareError, metric_table, param_table, printable, read_run, write_page

        try:
            runs = [read_run(p) for p in finished]
        except CompareError as err:  # a run stopped early (--until) may have no metrics yet
            log(f"sweep: no comparison page — {err}")
        else:
            failed = [f"failed: {p.label} — {(p.error or '').splitlines()[0] if p.error else ''}"
                      for p in points if p.status != "ok"]
            write_page(runs, folder, title=f"Sweep of preset {preset}: {len(finished)} of {len(points)} runs "
                                           f"finished", notes=notes + failed, figures=figures)
            log(printable(runs, param_table(runs), metric_table(runs), limit=25))
    log(f"sweep: {sum(p.status == 'ok' for p in points)} of {len(points)} runs finished; {folder / 'sweep.json'}")
    return folder


def connect(address: str | None = None, reports: Path | None = None, num_cpus: int | None = None):
    """Join the Ray cluster at ``address`` (or ``RAY_ADDRESS``) — after checking that its every
    node can use ``reports`` (:func:`check_shared`) — or start a Ray instance on this machine;
    returns a function that disconnects again (a no-op when Ray was already initialised in this
    process, say by a test or by the trials before a tune's final run)."""
    import ray

    if ray.is_initialized():
        return lambda: None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=False)
        if reports is not None:
            try:
                check_shared(Path(reports))
            except BaseException:
                ray.shutdown()
                raise
    else:  # "local": a new instance, never a cluster some `ray start` left running on this machine
        from ..hardware import usable_cores

        ray.init(address="local", num_cpus=num_cpus or usable_cores(), include_dashboard=False, log_to_driver=False)
    return ray.shutdown


def execute(points: list[Point], preset: str, folder: Path, run, run_kwargs: dict, *, num_cpus: float | None = None,
            num_gpus: float = 0, address: str | None = None, log=print, on_done=lambda: None) -> None:
    """Run each point's series as a Ray task; fills in each point as its task ends (then calls
    ``on_done``). A task whose worker dies is retried once (Ray's ``max_retries``); one that
    raises is not (the partial run is kept)."""
    import ray

    disconnect = connect(address, run_kwargs["reports"])
    try:
        kill = json.loads(os.environ.get(KILL_ENV) or "null")
        task = run_task(num_cpus, num_gpus)
        attempts = folder / "attempts"
        attempts.mkdir(exist_ok=True)
        round_id = uuid.uuid4().hex[:8]
        pending = {}
        for index, point in enumerate(points):
            doomed = bool(kill) and all(point.overrides.get(k) == v for k, v in kill.items())
            ref = task.remote(run, preset, point.overrides, run_kwargs, str(attempts / f"{index:04d}-{round_id}"), doomed)
            pending[ref] = (index, point)
            point.status = "submitted"
        stop = ctrl_c_flag()  # Ctrl-C is acted on here, never inside a library that might catch it
        while pending:
            if stop.is_set():
                raise KeyboardInterrupt
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            if not done:
                continue
            index, point = pending.pop(done[0])
            result = outcome(done[0])
            for key, value in result.items():
                setattr(point, key, value)
            point.attempts = len(list(attempts.glob(f"{index:04d}-{round_id}-*.json")))
            if result["status"] == "failed" and point.node is None:  # the last attempt's node, from its record
                records = sorted(attempts.glob(f"{index:04d}-{round_id}-*.json"), key=lambda p: p.stat().st_mtime)
                if records:
                    last = json.loads(records[-1].read_text())
                    point.node, point.host = last["node"], last["host"]
            log(f"[sweep] {point.label}: {point.status}"
                + (f" in {point.seconds:.0f} s" if point.seconds is not None else "")
                + f" on {point.host} (node {str(point.node)[:8]}, attempt {point.attempts})"
                + (f" — {point.error.splitlines()[0]}" if point.error else ""))
            on_done()
    finally:
        ctrl_c_flag.restore()
        disconnect()


def ctrl_c_flag():
    """An event that SIGINT sets while runs or trials run (in the main thread; elsewhere one that is
    never set). A KeyboardInterrupt raised wherever the signal lands could be caught inside a
    library call (a tune once ran to its end after Ctrl-C); the waiting loops check the flag between steps."""
    import signal
    import threading

    flag = threading.Event()
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, lambda *_: flag.set())
        ctrl_c_flag.restore = lambda: signal.signal(signal.SIGINT, previous)
    return flag


ctrl_c_flag.restore = lambda: None


def run_task(num_cpus: float | None = None, num_gpus: float = 0):
    """The Ray remote function that runs one series (:func:`_run_point`): ``num_cpus`` cores
    (default: every core of this machine) and ``num_gpus`` GPUs asked for, retried once when its
    worker dies, this machine's project root and offline settings carried to the worker."""
    import ray

    from ..hardware import usable_cores

    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    env["MBMLAB_ROOT"] = str(project_root())
    return ray.remote(_run_point).options(num_cpus=num_cpus or usable_cores(), num_gpus=num_gpus, max_retries=1,
                                          retry_exceptions=False, runtime_env={"env_vars": env})


def outcome(ref) -> dict:
    """What :func:`_run_point` returned for a finished task, or a failure naming the cause when its
    worker died on every attempt."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return {"status": "failed", "error": f"{type(err).__name__}: the worker running it died on every attempt "
                                             f"(retried once) — {first}"}


def _run_point(run, preset: str, overrides: dict, run_kwargs: dict, attempt_stem: str, doomed: bool) -> dict:
    """One combination's series inside a Ray worker; records the attempt (node, host, pid) first."""
    import ray

    from .runner import NotebookFailed

    context = ray.get_runtime_context()
    node, host = context.get_node_id(), ray.util.get_node_ip_address()
    Path(f"{attempt_stem}-{uuid.uuid4().hex[:8]}.json").write_text(json.dumps(
        {"node": node, "host": host, "pid": os.getpid(), "started": time.time()}))
    if doomed:
        os._exit(1)  # as a lost node or an out-of-memory kill would
    start = time.perf_counter()
    out = {"node": node, "host": host}
    try:
        folder = run(preset, overrides, log=lambda *a: None, **run_kwargs)
        out |= {"run": str(folder), "status": "ok"}
    except NotebookFailed as err:
        out |= {"run": str(err.partial.parent), "status": "failed", "error": str(err)}
    except Exception as err:  # a broken combination must not end the sweep
        out |= {"status": "failed", "error": f"{type(err).__name__}: {err}"}
    out["seconds"] = time.perf_counter() - start
    return out


def check_shared(reports: Path) -> None:
    """Every alive node of the cluster can read a file this machine wrote under ``reports`` and
    write one beside it; else ``SweepError`` naming the node (before any run starts)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    reports.mkdir(parents=True, exist_ok=True)
    token = reports / f".mbmlab-shared-{uuid.uuid4().hex[:12]}"
    token.write_text("mbmlab")
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        probe = ray.remote(_probe)
        refs = [probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(str(token)) for n in nodes]
        for node, problem in zip(nodes, ray.get(refs, timeout=120)):
            if problem:
                raise SweepError(f"node {node['NodeManagerAddress']} (id {node['NodeID'][:8]}) cannot use the reports "
                                 f"folder {reports}: {problem}. On a cluster --reports must be a path every node "
                                 "mounts (a shared filesystem).")
    finally:
        for path in reports.glob(f"{token.name}*"):
            path.unlink(missing_ok=True)


def _probe(token: str) -> str | None:
    """On one node: None when ``token`` reads back and a file can be written beside it, else why not."""
    import ray

    path = Path(token)
    try:
        if path.read_text() != "mbmlab":
            return f"{path} has other content there"
        path.with_name(f"{path.name}.{ray.get_runtime_context().get_node_id()[:12]}").write_text("ok")
    except OSError as err:
        return f"{type(err).__name__}: {err}"
    return None


def _load(folder: Path):
    path = folder / "sweep.json"
    if not path.exists():
        raise SweepError(f"{folder} has no sweep.json: not a sweep folder")
    saved = json.loads(path.read_text())
    points = [Point(**p) for p in saved["points"]]
    return folder.resolve(), saved["preset"], saved["grid"], points, saved.get("options", {})


def write_summary(folder: Path, preset: str, grid: dict, points: list[Point], options: dict | None = None) -> None:
    import pandas as pd

    tmp = folder / "sweep.json.tmp"
    tmp.write_text(json.dumps({"preset": preset, "grid": grid, "options": options or {},
                               "points": [asdict(p) for p in points]}, indent=1, default=str))
    tmp.replace(folder / "sweep.json")
    pd.DataFrame([{"combination": p.label, "status": p.status, "seconds": p.seconds, "run": p.run, "host": p.host,
                   "node": p.node, "attempts": p.attempts,
                   "error": (p.error or "").splitlines()[0] if p.error else ""} for p in points]) \
        .to_csv(folder / "sweep.csv", index=False)
