"""Run the notebook series headless with papermill into a fresh ``reports/<run-id>/``."""
from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import hardware
from . import params as P
from . import reuse as R
from .paths import new_run_dir, project_root, reports_dir
from ..artifacts import CorruptArtifactError, check_run_models, log_metrics, read_metrics, save_json
from .report import write_index

# Offline unless the caller says otherwise (HF_HUB_OFFLINE=0 mbmlab run … lets hub names load).
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
# Same seed, same machine → same numbers. MKL (torch's CPU BLAS) may otherwise use fewer threads
# than asked when the machine is busy (MKL_DYNAMIC) and pick kernels by memory alignment; either
# changes the order of float additions. Conditional numerical reproducibility (MKL_CBWR) fixes
# the code path and makes results independent of alignment; the kernels read these at start-up.
REPRODUCIBLE_ENV = {"MKL_DYNAMIC": "FALSE", "OMP_DYNAMIC": "FALSE", "MKL_CBWR": "AUTO,STRICT"}


class NotebookFailed(RuntimeError):
    """A notebook of the series raised; the partial executed notebook is kept."""

    def __init__(self, notebook: str, cell: int | None, error: str, partial: Path, source: str = ""):
        self.notebook, self.cell, self.error, self.partial = notebook, cell, error, partial
        where = f"cell {cell} of the executed notebook" if cell is not None else "an unknown cell"
        first_line = source.strip().splitlines()[0] if source.strip() else ""
        shown = f" ({first_line[:80]})" if first_line else ""
        super().__init__(f"{notebook} failed in {where}{shown}: {error}\npartial notebook kept at {partial}")


@dataclass
class Series:
    notebooks_dir: Path
    names: tuple[str, ...] = P.NOTEBOOKS

    def path(self, name: str) -> Path:
        path = self.notebooks_dir / f"{name}.ipynb"
        if not path.exists():
            raise FileNotFoundError(f"notebook {path} is missing")
        return path


def environment() -> dict[str, str]:
    import torch
    import transformers

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=project_root(), timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "python": sys.version.split()[0], "platform": platform.platform(), "cpus": str(os.cpu_count()),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "torch threads": str(torch.get_num_threads()), "git commit": commit or "unknown",
    } | hardware.profile() | {key: os.environ.get(key, "") for key in REPRODUCIBLE_ENV}


def anchored(values: dict, cwd: Path | None = None) -> dict:
    """``values`` with a relative ``user_dir`` made absolute against the caller's working folder
    (the notebooks run in other folders, where a relative path would name nothing), refused
    before anything runs when it is not a folder."""
    if not values.get("user_dir"):
        return values
    folder = Path(values["user_dir"]).expanduser()
    folder = folder if folder.is_absolute() else (cwd or Path.cwd()) / folder
    if "user" in values.get("sources", []) and not folder.is_dir():
        raise P.ParameterError(f"user_dir={values['user_dir']!r} is not a folder (looked at {folder})")
    return values | {"user_dir": str(folder.resolve())}


def collapse_progress(text: str) -> str:
    """What a terminal shows of carriage-return progress bars: the last state of each line."""
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))


def tidy_outputs(outputs: list) -> list:
    """A cell's outputs as a reader should see them: the kernel sends each progress-bar update as
    its own stream output, so consecutive streams are joined and their bars collapsed."""
    merged: list = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (output.get("output_type") == "stream" and previous is not None
                and previous.get("output_type") == "stream" and previous["name"] == output["name"]):
            previous["text"] += output["text"]
        else:
            merged.append(output)
    for output in merged:
        if output.get("output_type") == "stream":
            output["text"] = collapse_progress(output["text"])
    return merged


# nbconvert's lab template loads require.js and MathJax from a CDN: offline (and by e-mail) the
# page then logs failed loads. The series has no widgets and no LaTeX, so both are left out;
# the page keeps its inlined figures and styles and needs nothing from the network.
OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{% block html_head_js_requirejs %}{% endblock html_head_js_requirejs %}
{% block html_head_js_mathjax %}{% endblock html_head_js_mathjax %}
"""


def html_for(notebook: Path) -> Path:
    """Render an executed notebook to HTML next to it, progress bars tidied, nothing loaded from
    the network (the .ipynb is untouched)."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if "outputs" in cell:
            cell["outputs"] = tidy_outputs(cell["outputs"])
    exporter = HTMLExporter(template_name="lab", template_file="mbmlab_offline.html.j2",
                            extra_loaders=[jinja2.DictLoader({"mbmlab_offline.html.j2": OFFLINE_TEMPLATE})])
    body, _ = exporter.from_notebook_node(nb)
    out = notebook.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


class RunLocked(RuntimeError):
    """Another live process is writing this run folder."""


class RunInterrupted(RuntimeError):
    """Ctrl-C stopped the run; ``mbmlab run --resume`` continues it."""


def lock(run_dir: Path) -> Path:
    """Take ``run_dir/.lock`` (created exclusively, holding our pid); refuse while the process that
    holds it is alive, take over a lock whose process is gone."""
    path = Path(run_dir) / ".lock"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = int(path.read_text().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder and _alive(holder):
                raise RunLocked(f"{run_dir} is being written by process {holder}; wait for it, or stop it "
                                f"(kill {holder}) before resuming") from None
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return path
    raise RunLocked(f"could not take the lock {path}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_cell(notebook: Path) -> tuple[int | None, str]:
    """The cell papermill was executing when the kernel went away (1-based, as in the executed
    notebook) and its source: the last cell whose status is no longer ``pending``."""
    import nbformat

    try:
        nb = nbformat.read(notebook, as_version=4)
    except (OSError, ValueError):
        return None, ""
    started = [i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("papermill", {}).get("status")
               not in (None, "pending")]
    return (started[-1] + 1, nb.cells[started[-1]].source) if started else (None, "")


def changed_params(earlier: dict, values: dict) -> dict:
    """The parameters whose value differs: name → [the earlier value, the new one]."""
    return {k: [earlier.get(k), v] for k, v in values.items() if earlier.get(k) != v}


def reads_changed(notebook: str, changed: dict, values: dict) -> set[str]:
    """The changed parameters ``notebook`` reads (it must run again when any)."""
    return set(changed) & set(P.for_notebook(notebook, values))


def changed_on_resume(run: dict, values: dict) -> dict | None:
    """Before a resume with changed parameters: set ``run["params"]`` to ``values``, mark pending
    again every finished notebook from the first that reads a changed parameter on, and mark the
    notebook that stopped to continue its trainings from their newest checkpoints
    (``continue_training``) unless a notebook before it runs again. Returns what changed (None:
    nothing)."""
    changed = changed_params(run["params"], values)
    notebooks = run["notebooks"]
    stopped = next(i for i, nb in enumerate(notebooks) if nb["status"] != "ok")
    reads = [i for i, nb in enumerate(notebooks) if reads_changed(nb["name"], changed, values)]
    rerun_from = min([stopped, *reads])
    for nb in notebooks[rerun_from:]:
        nb["status"] = "pending" if nb["status"] == "ok" else nb["status"]
    # a run stopped by --until never started its next notebook: nothing to continue from
    notebooks[stopped]["continue_training"] = rerun_from == stopped and run.get("status") != "stopped"
    run["params"] = values
    if not changed:
        return None
    return {"at": time.strftime("%Y-%m-%d %H:%M:%S"), "params": changed,
            "rerun": [nb["name"] for nb in notebooks[rerun_from:]]}


@dataclass
class Start:
    """What ``mbmlab run --from RUN`` takes from RUN (``plan_from``)."""
    source: Path  # RUN's folder
    earlier: dict  # RUN's run.json
    values: dict  # the new run's parameters: RUN's, with the --set changes
    taken: list[str]  # RUN's notebooks whose outputs the new run copies instead of running them
    changed: dict  # parameter → [RUN's value, the new one]


def plan_from(source: Path, overrides: dict | None = None) -> Start:
    """Check ``source`` (a finished or partial run folder) and say what a new run with its
    parameters, changed by ``overrides``, takes from it: each notebook in order that ``source``
    finished and that reads no changed parameter, up to the first that does (it and every later
    one run again). Nothing is created; refused with ``FileNotFoundError``/``ValueError`` (a
    damaged model: ``CorruptArtifactError``) when the run folder, a file a taken notebook wrote, or
    01's dataset is gone, when nothing would be taken or nothing would run, or when ``source``
    was made before runs recorded each notebook's outputs."""
    source = Path(source).resolve()
    if not (source / "run.json").exists():
        raise FileNotFoundError(f"{source} has no run.json: not a run folder that `mbmlab run` started")
    earlier = json.loads((source / "run.json").read_text())
    preset = earlier["preset"]
    values = anchored(P.resolve(preset, earlier["params"] | (overrides or {})))
    changed = changed_params(earlier["params"], values)
    names = [nb["name"] for nb in earlier["notebooks"]]
    if names != list(P.series(preset)):
        raise ValueError(f"{source} ran {', '.join(names)}; the {preset} series is now "
                         f"{', '.join(P.series(preset))}: run it anew")
    taken = []
    for nb in earlier["notebooks"]:
        if nb["status"] != "ok" or reads_changed(nb["name"], changed, values):
            break
        if "outputs" not in nb:
            raise ValueError(f"{source} does not record which files {nb['name']} wrote (made before runs recorded "
                             f"them): `mbmlab run` reuses its cached notebooks by content instead")
        missing = [rel for rel in nb["outputs"]["files"] if not (source / rel).is_file()]
        if missing:
            raise FileNotFoundError(f"{source / missing[0]}, which {nb['name']} wrote, is gone: run the series "
                                    f"without --from")
        taken.append(nb["name"])
    if not taken:
        first = earlier["notebooks"][0]
        why = "did not finish" if first["status"] != "ok" else \
            f"reads {', '.join(sorted(reads_changed(first['name'], changed, values)))}"
        raise ValueError(f"nothing to take from {source}: its first notebook {first['name']} {why}")
    if len(taken) == len(names):
        raise ValueError(f"{source} ran every notebook with these parameters; change one with --set (the "
                         f"notebooks that read it, and every one after, run again)")
    check_run_models(source, taken)
    if P.NB_COLLECT in taken and (source / "dataset.json").exists():
        dataset = Path(json.loads((source / "dataset.json").read_text())["path"])
        if not dataset.exists():
            raise FileNotFoundError(f"{dataset}, the dataset {source.name}'s {P.NB_COLLECT} built, is gone: run the "
                                    f"series without --from")
    return Start(source, earlier, values, taken, changed)


def take(start: Start, name: str, run_dir: Path) -> dict:
    """Copy what ``start.source``'s notebook ``name`` wrote (its ``outputs``: files and metric
    names) into ``run_dir``; its executed notebook is made this run's, with a first cell saying so.
    Returns the notebook's entry for ``run.json``."""
    t0 = time.perf_counter()
    entry = next(nb for nb in start.earlier["notebooks"] if nb["name"] == name)
    R.copy_files(start.source, entry["outputs"]["files"], run_dir)
    metrics = read_metrics(start.source, missing_ok=True)
    log_metrics(run_dir, {k: metrics[k] for k in entry["outputs"]["metrics"] if k in metrics})
    # where it was computed: that run, or the run it had it from (reused from the cache, or taken)
    origin = entry.get("taken") or entry.get("reused")
    made_in, seconds = (origin.get("made_in", origin["from_run"]), origin["seconds_then"]) if origin else \
        (start.source.name, entry["seconds"])
    out = run_dir / f"{name}.ipynb"
    if out.exists():
        R.adopt(out, str(start.source), start.source.name, run_dir,
                f"**Taken from run `{start.source.name}`** (`mbmlab run --from`): not run again. "
                + (f"Run `{made_in}` computed it" if made_in != start.source.name else "That run ran it")
                + f" ({seconds:.0f} s) with the parameters this notebook reads here, and its outputs were copied as "
                f"they were, whatever code ran then. The outputs below are that run's, with its folder name "
                f"replaced by this run's.")
        html_for(out)
    return {"name": name, "status": "ok", "seconds": time.perf_counter() - t0, "html": f"{name}.html",
            "notebook": out.name, "key": entry.get("key"), "outputs": entry["outputs"],
            "taken": {"from_run": start.source.name, "from_path": str(start.source), "made_in": made_in,
                      "seconds_then": seconds}}


def run_series(preset: str = "default", overrides: dict | None = None, *, reports: Path | None = None,
               notebooks_dir: Path | None = None, kernel_name: str = "python3", progress: bool = True,
               cell_timeout: int | None = None, resume: Path | None = None, reuse: bool = True,
               until: str | None = None, experiment: str | None = None, start_from: Path | None = None,
               log=print) -> Path:
    """Validate parameters, then execute every notebook in order; returns the run directory.

    ``resume``: an earlier run folder whose run failed or was interrupted; its parameters are
    used again and the series continues from the first notebook that did not finish.
    ``cell_timeout``: seconds one cell may run before the run fails with a timeout.
    ``until``: the last notebook to run (say ``03_fuse``: train now, evaluate later); the run then
    stops with status ``stopped``, and ``--resume`` runs the rest.
    ``experiment``: the MLflow experiment the run is logged to (default: its preset;
    ``mbmlab.lab.tracking``; a logging failure only warns).
    ``reuse``: a notebook whose key (``mbmlab.lab.reuse.key``) matches a whole cache entry is not
    run; its outputs are copied in and ``run.json`` says from which run (False: run every notebook,
    and refresh the cache).
    ``start_from``: an earlier run folder; a new run with its preset and parameters, changed by
    ``overrides``, copies the notebooks before the first that reads a changed parameter from it
    as they are (``plan_from``), whatever code made them, and runs the rest (``preset`` unused).
    Each notebook's entry in ``run.json`` records the files it wrote and the metrics it added
    (``outputs``), which is what a later ``--from`` copies.

    Raises ``ParameterError`` before anything is created, ``NotebookFailed`` (after writing the
    partial notebook and index.html) when a notebook fails or its kernel dies, ``RunInterrupted``
    on Ctrl-C and ``RunLocked`` when another process is writing the run folder.
    """
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from .kernels import execute_notebook

    if resume is not None and start_from is not None:
        raise ValueError("--resume continues a run in its own folder; --from starts a new one: give one of them")
    if resume is not None:
        run_dir = Path(resume).resolve()
        if not (run_dir / "run.json").exists():
            raise FileNotFoundError(f"{run_dir} has no run.json: not a run folder that `mbmlab run` started")
        held = lock(run_dir)
        run = json.loads((run_dir / "run.json").read_text())
        preset, values = run["preset"], run["params"]
        if run["status"] == "ok":
            held.unlink(missing_ok=True)
            raise ValueError(f"{run_dir} finished ({run['status']}); nothing to resume")
        try:  # still valid under today's schema, with the changes asked for
            changes = changed_on_resume(run, anchored(P.resolve(preset, values | (overrides or {}))))
        except P.ParameterError:
            held.unlink(missing_ok=True)
            raise
        values = run["params"]
        run["overrides"] = run.get("overrides", {}) | (overrides or {})
        try:  # what the finished notebooks saved is reused as it is: refuse it damaged
            check_run_models(run_dir, [nb["name"] for nb in run["notebooks"] if nb["status"] == "ok"])
        except CorruptArtifactError:
            held.unlink(missing_ok=True)
            raise
    elif start_from is not None:  # refuse what cannot be taken before any work starts
        start = plan_from(start_from, overrides)
        preset, values = start.earlier["preset"], start.values
    else:
        values = anchored(P.resolve(preset, overrides))  # refuse bad input before any work starts
    series = Series(Path(notebooks_dir or project_root() / "notebooks"), P.series(preset))
    if until is not None and until not in series.names:
        if resume is not None:
            held.unlink(missing_ok=True)
        raise ValueError(f"--until {until!r} is not a notebook of the {preset} series: {', '.join(series.names)}")
    sources = {name: series.path(name) for name in series.names}
    for key, value in (OFFLINE_ENV | REPRODUCIBLE_ENV).items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MBMLAB_ROOT", str(project_root()))
    if resume is None:
        run_dir = new_run_dir(reports or reports_dir(), label=preset).resolve()
        held = lock(run_dir)
        run = {"run_id": run_dir.name, "preset": preset, "params": values, "overrides": overrides or {},
               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "status": "running", "error": None,
               "total_seconds": None, "environment": environment(),
               "notebooks": [{"name": n, "status": "pending", "seconds": None, "html": None, "notebook": None}
                             for n in series.names]}
        save_json(run_dir, "params.json", values)
        if start_from is not None:
            run["from"] = {"run": start.source.name, "path": str(start.source), "params": start.changed,
                           "taken": start.taken}
            log(f"from {start.source}: taking {', '.join(start.taken)}"
                + (f"; {', '.join(f'{k}={v[1]!r} (was {v[0]!r})' for k, v in start.changed.items())}"
                   if start.changed else ""))
            for i, name in enumerate(start.taken):
                run["notebooks"][i] = take(start, name, run_dir)
        save_json(run_dir, "run.json", run)  # a run killed outright (SIGKILL, power loss) can still be resumed
    else:
        run.update(status="running", error=None)
        run.setdefault("resumed", []).append(time.strftime("%Y-%m-%d %H:%M:%S"))
        if changes:
            run.setdefault("resume_changes", []).append(changes)
            save_json(run_dir, "params.json", values)
        log(f"resuming {run_dir} from {next(nb['name'] for nb in run['notebooks'] if nb['status'] != 'ok')}"
            + (f" with {', '.join(f'{k}={v[1]!r} (was {v[0]!r})' for k, v in changes['params'].items())}"
               if changes else ""))
    def interrupted(name: str, entry: dict, t0: float) -> RunInterrupted:
        entry.update(status="interrupted", seconds=time.perf_counter() - t0)
        run.update(status="interrupted", error=f"interrupted (Ctrl-C) during {name}; continue with "
                                               f"`mbmlab run --resume {run_dir}`")
        return RunInterrupted(run["error"])

    start = time.perf_counter()
    earlier = run.get("total_seconds") or 0.0
    log(f"run {run_dir}")
    cache, upstream = R.Cache(log=log), None
    claim = contextlib.ExitStack()  # the cache key of the notebook being computed, held until it is stored
    try:
        for i, (name, entry) in enumerate(zip(series.names, run["notebooks"]), start=1):
            if entry["status"] == "ok":
                upstream = entry.get("key")  # resumed: done before
                if name == until:
                    break
                continue
            log(f"[{i}/{len(series.names)}] {name}")
            out = run_dir / f"{name}.ipynb"
            entry["notebook"] = out.name
            t0 = time.perf_counter()
            given = P.for_notebook(name, values)
            if entry.pop("continue_training", False) and "resume" in given:  # from its newest checkpoints
                given["resume"] = True
                entry["key"], covers = None, {}  # a training continued is not a fresh one: never reused
            else:
                entry["key"], covers = R.key(name, values, sources[name], upstream)
            upstream = entry["key"]  # the next notebook's input
            claim.close()
            if reuse and entry["key"]:  # a run computing the same key (a sweep's other run): wait, then reuse it
                claim.enter_context(cache.claim(name, entry["key"]))
            hit = cache.lookup(name, entry["key"]) if reuse and entry["key"] else None
            if hit is not None:
                manifest = cache.restore(hit, run_dir)
                if out.exists():
                    cache.adopt(out, manifest, run_dir)
                    html_for(out)
                entry.update(status="ok", seconds=time.perf_counter() - t0, html=f"{name}.html",
                             reused={"from_run": manifest["from_run"], "from_path": manifest["from_path"],
                                     "cache": str(hit), "seconds_then": manifest["seconds"]},
                             outputs={"files": sorted(manifest["files"]), "metrics": sorted(manifest["metrics"])})
                save_json(run_dir, "run.json", run)
                log(f"      {name} reused from run {manifest['from_run']} (same key {entry['key']}): "
                    f"{entry['seconds']:.1f} s instead of {manifest['seconds']:.0f} s")
                if name == until:
                    break
                continue
            before, metrics_before = R.snapshot(run_dir), read_metrics(run_dir, missing_ok=True)
            failure = None
            try:
                execute_notebook(
                    sources[name], out,
                    parameters={"run_dir": str(run_dir), **given},
                    kernel_name=kernel_name, progress_bar=progress, cwd=str(run_dir),
                    execution_timeout=cell_timeout,
                )
            except pm.PapermillExecutionError as err:
                if err.ename == "KeyboardInterrupt":  # Ctrl-C reached the kernel first
                    raise interrupted(name, entry, t0) from None
                cell = err.cell_index + 1 if err.cell_index is not None else None  # 1-based, as a reader counts
                failure = NotebookFailed(name, cell, f"{err.ename}: {err.evalue}", out, err.source or "")
            except DeadKernelError:
                cell, source = running_cell(out)
                failure = NotebookFailed(name, cell, "the kernel died: its process ended without raising — killed "
                                         "by a signal (out of memory, or kill) or crashed", out, source)
            except CellTimeoutError:
                cell, source = running_cell(out)
                failure = NotebookFailed(name, cell, f"the cell ran longer than the cell timeout ({cell_timeout} s)",
                                         out, source)
            except KeyboardInterrupt:
                raise interrupted(name, entry, t0) from None
            finally:
                if out.exists():
                    try:
                        entry["html"] = html_for(out).name
                    except Exception as err:  # a half-written notebook must not hide the real failure
                        log(f"      could not render {out.name}: {err}")
            if failure is not None:
                entry.update(status="failed", seconds=time.perf_counter() - t0)
                run.update(status="failed", error=f"{failure}\ncontinue with `mbmlab run --resume {run_dir}`")
                raise failure
            entry.update(status="ok", seconds=time.perf_counter() - t0)
            made = R.outputs(run_dir, before, metrics_before)
            entry["outputs"] = {"files": made["files"], "metrics": sorted(made["metrics"])}  # what --from copies
            if entry["key"]:
                cache.store(name, entry["key"], covers, run_dir, made, entry["seconds"], replace=not reuse)
            claim.close()
            save_json(run_dir, "run.json", run)
            log(f"      {name} done in {entry['seconds']:.1f} s")
            if name == until:
                break
        if any(entry["status"] != "ok" for entry in run["notebooks"]):  # stopped by --until
            run.update(status="stopped", error=f"stopped after {until} (--until); run the rest with "
                                               f"`mbmlab run --resume {run_dir}`")
            log(run["error"])
        else:
            run["status"] = "ok"
    finally:
        claim.close()
        if run["status"] == "running":  # an unexpected error
            run["status"] = "failed"
            run["error"] = run["error"] or "the run stopped before the series finished"
        run["total_seconds"] = earlier + time.perf_counter() - start
        save_json(run_dir, "run.json", run)
        write_index(run_dir, run)
        held.unlink(missing_ok=True)
        from .tracking import log_run

        log_run(run_dir, experiment, log=log)
    log(f"report: {run_dir / 'index.html'}")
    return run_dir
