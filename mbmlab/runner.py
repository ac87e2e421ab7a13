"""Run the notebook series headless with papermill into a fresh ``reports/<run-id>/``."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import params as P
from .paths import new_run_dir, project_root, reports_dir
from .report import save_json, write_index

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
    } | {key: os.environ.get(key, "") for key in REPRODUCIBLE_ENV}


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


def html_for(notebook: Path) -> Path:
    """Render an executed notebook to HTML next to it, progress bars tidied (the .ipynb is untouched)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if "outputs" in cell:
            cell["outputs"] = tidy_outputs(cell["outputs"])
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    out = notebook.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def run_series(preset: str = "default", overrides: dict | None = None, *, reports: Path | None = None,
               notebooks_dir: Path | None = None, kernel_name: str = "python3", progress: bool = True,
               log=print) -> Path:
    """Validate parameters, then execute every notebook in order; returns the run directory.

    Raises ``ParameterError`` before anything is created, and ``NotebookFailed`` (after writing
    the partial notebook and index.html) when a notebook fails.
    """
    import papermill as pm

    values = P.resolve(preset, overrides)  # refuse bad input before any work starts
    series = Series(Path(notebooks_dir or project_root() / "notebooks"), P.series(preset))
    sources = {name: series.path(name) for name in series.names}
    for key, value in (OFFLINE_ENV | REPRODUCIBLE_ENV).items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MBMLAB_ROOT", str(project_root()))
    run_dir = new_run_dir(reports or reports_dir(), label=preset).resolve()
    run = {"run_id": run_dir.name, "preset": preset, "params": values, "overrides": overrides or {},
           "started": time.strftime("%Y-%m-%d %H:%M:%S"), "status": "running", "error": None,
           "total_seconds": None, "environment": environment(),
           "notebooks": [{"name": n, "status": "pending", "seconds": None, "html": None, "notebook": None}
                         for n in series.names]}
    save_json(run_dir, "params.json", values)
    start = time.perf_counter()
    log(f"run {run_dir}")
    try:
        for i, (name, entry) in enumerate(zip(series.names, run["notebooks"]), start=1):
            log(f"[{i}/{len(series.names)}] {name}")
            out = run_dir / f"{name}.ipynb"
            entry["notebook"] = out.name
            t0 = time.perf_counter()
            try:
                pm.execute_notebook(
                    str(sources[name]), str(out),
                    parameters={"run_dir": str(run_dir), **P.for_notebook(name, values)},
                    kernel_name=kernel_name, progress_bar=progress, cwd=str(run_dir),
                )
            except pm.PapermillExecutionError as err:
                entry.update(status="failed", seconds=time.perf_counter() - t0)
                cell = err.cell_index + 1 if err.cell_index is not None else None  # 1-based, as a reader counts
                failure = NotebookFailed(name, cell, f"{err.ename}: {err.evalue}", out, err.source or "")
                run.update(status="failed", error=str(failure))
                raise failure from None
            finally:
                if out.exists():
                    entry["html"] = html_for(out).name
            entry.update(status="ok", seconds=time.perf_counter() - t0)
            log(f"      {name} done in {entry['seconds']:.1f} s")
        run["status"] = "ok"
    finally:
        if run["status"] == "running":  # interrupted or an unexpected error
            run["status"] = "failed"
            run["error"] = run["error"] or "the run stopped before the series finished"
        run["total_seconds"] = time.perf_counter() - start
        save_json(run_dir, "run.json", run)
        write_index(run_dir, run)
    log(f"report: {run_dir / 'index.html'}")
    return run_dir
