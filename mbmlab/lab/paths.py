"""Where things live: the project root, data/, reports/ and one directory per run."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

from ..artifacts import MissingArtifactError


class RunDirError(MissingArtifactError):
    """A run directory, or an artifact an earlier notebook should have written, is missing."""


def project_root(start: Path | None = None) -> Path:
    """The folder holding ``pyproject.toml`` and ``notebooks/`` above ``start`` (default: cwd).

    ``MBMLAB_ROOT`` overrides it; outside a checkout the current directory is used.
    """
    if os.environ.get("MBMLAB_ROOT"):
        return Path(os.environ["MBMLAB_ROOT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() and (folder / "notebooks").is_dir():
            return folder
    return here


def data_dir() -> Path:
    return project_root() / "data"


def reports_dir() -> Path:
    return Path(os.environ.get("MBMLAB_REPORTS", project_root() / "reports"))


_RUN_ID = re.compile(r"[^A-Za-z0-9_.-]+")


def new_run_dir(reports: Path | None = None, label: str = "run") -> Path:
    """Create a fresh ``reports/<timestamp>-<label>`` directory; never reuse an existing one."""
    reports = Path(reports or reports_dir())
    reports.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    label = _RUN_ID.sub("-", label).strip("-") or "run"
    for n in range(1000):
        run_id = f"{stamp}-{label}" + (f"-{n}" if n else "")
        try:
            (reports / run_id).mkdir()
        except FileExistsError:
            continue
        return reports / run_id
    raise RuntimeError(f"could not create a new run directory under {reports}")


def resolve_run_dir(run_dir: str | os.PathLike, needs: str | None = None) -> Path:
    """The run directory a notebook works in.

    An explicit path must exist. An empty one means "the newest run under reports/ that
    has ``needs``" (so notebooks stepped through by hand chain onto each other); with no
    ``needs`` (the first notebook) a new interactive run is created.
    """
    if str(run_dir):
        path = Path(run_dir).expanduser().resolve()
        if not path.is_dir():
            raise RunDirError(f"run_dir {str(path)!r} does not exist; run 01_collect first or pass an existing run")
        if needs and not (path / needs).exists():
            raise RunDirError(f"{path} has no {needs!r}; run the earlier notebooks of the series on it first")
        return path
    if needs is None:
        return new_run_dir(label="interactive")
    candidates = sorted(
        (p for p in reports_dir().glob("*/") if (p / needs).exists()),
        key=lambda p: p.stat().st_mtime,
    )
    if not candidates:
        raise RunDirError(f"no run under {reports_dir()} has {needs!r}; run the earlier notebooks first")
    return candidates[-1].resolve()
