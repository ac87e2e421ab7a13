"""Every run tracked in MLflow: its parameters, ``metrics.json``, each training's per-step losses,
the hardware profile and ``index.html`` (with ``metrics.json``, ``params.json``, ``run.json``) as
artifacts — one MLflow run per run folder, in one experiment per preset (a sweep's runs in an
experiment named after the sweep folder).

The store is ``MLFLOW_TRACKING_URI`` when set (a server, a database), else a SQLite file beside the
run folders, ``reports/mlflow.db``, with the artifacts under ``reports/mlartifacts/``; open it with
``./workbench mlflow``. ``MBMLAB_MLFLOW=0`` turns tracking off. Logging never fails a run: any
error (an unreachable server, a locked database) is logged as a warning and the run goes on.

MLflow allows letters, digits and ``_ - . / :`` and spaces in names; other characters (the ``@``
of ``recall@1``) become ``_`` (:func:`mlflow_name`), so ``align/audio/recall@1`` is logged as
``align/audio/recall_1``. Values are logged as they are in ``metrics.json``.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

ENABLE_ENV = "MBMLAB_MLFLOW"
_ALLOWED = re.compile(r"[^\w\-./: ]", re.ASCII)


def mlflow_name(name: str) -> str:
    """``name`` with each character MLflow refuses in a metric or parameter name replaced by ``_``."""
    return _ALLOWED.sub("_", name)


def enabled() -> bool:
    return os.environ.get(ENABLE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def tracking_uri(reports: Path) -> str:
    """``MLFLOW_TRACKING_URI``, else ``sqlite:///<reports>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path(reports) / 'mlflow.db').resolve()}"


def histories(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Each training's logged losses by step, from the ``*_history.csv`` files the notebooks write:
    ``train/<training>/loss`` and ``train/<training>/eval_loss`` (the fused model's stages as
    ``train/fuse_<stage>/…``)."""
    import pandas as pd

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(Path(run_dir).glob("*_history.csv")):
        table = pd.read_csv(path)
        name = path.name.removesuffix("_history.csv")
        groups = table.groupby("stage") if "stage" in table else [(None, table)]
        for stage, rows in groups:
            training = f"{name}_{stage}" if stage is not None else name
            for column in ("loss", "eval_loss"):
                if column in rows and "step" in rows:
                    kept = rows[["step", column]].dropna()
                    if len(kept):
                        out[f"train/{training}/{column}"] = [(int(s), float(v)) for s, v in kept.to_numpy()]
    return out


def log_run(run_dir: Path, experiment: str | None = None, log=print) -> str | None:
    """Log the run folder to MLflow; returns the MLflow run id, or None (tracking off, or it
    failed — then a warning says why; the run is never failed by it)."""
    if not enabled():
        return None
    try:
        return _log(Path(run_dir), experiment)
    except Exception as err:  # noqa: BLE001 — tracking must never fail a run
        first = (str(err).strip().splitlines() or [""])[0][:300]
        log(f"warning: the run was not logged to MLflow ({tracking_uri(Path(run_dir).parent)}): "
            f"{type(err).__name__}: {first}")
        return None


def prepare(reports: Path, experiment: str, log=print) -> None:
    """Create the store and the experiment before runs log to it at once (a sweep's parallel runs
    would otherwise race to create the SQLite tables); a failure only warns."""
    if not enabled():
        return
    try:
        Path(reports).mkdir(parents=True, exist_ok=True)
        _experiment(_client(Path(reports)), Path(reports), experiment)
    except Exception as err:  # noqa: BLE001
        log(f"warning: MLflow store {tracking_uri(reports)} not ready: {type(err).__name__}: "
            f"{(str(err).strip().splitlines() or [''])[0][:300]}")


def _client(reports: Path):
    """An MLflow client on the store for ``reports``; an unreachable server fails in seconds, not
    after MLflow's default minutes of retries."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri(reports))


def _experiment(client, reports: Path, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    if os.environ.get("MLFLOW_TRACKING_URI"):  # the server decides where artifacts go
        return client.create_experiment(name)
    return client.create_experiment(name, artifact_location=(reports / "mlartifacts" / name).resolve().as_uri())


def _log(run_dir: Path, experiment: str | None) -> str:
    import time

    from mlflow.entities import Metric, Param, RunTag

    run = json.loads((run_dir / "run.json").read_text())
    params = json.loads((run_dir / "params.json").read_text()) if (run_dir / "params.json").exists() else {}
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").exists() else {}
    client = _client(run_dir.parent)
    experiment_id = _experiment(client, run_dir.parent, experiment or run.get("preset") or "default")
    tags = {"mbmlab.run_dir": str(run_dir.resolve()), "mbmlab.preset": str(run.get("preset")),
            "mbmlab.status": str(run.get("status")), "mbmlab.git_commit": str(run.get("environment", {}).get("git commit"))}
    created = client.create_run(experiment_id, run_name=run_dir.name, tags=tags)
    run_id = created.info.run_id
    now = int(time.time() * 1000)
    logged_params = [Param(mlflow_name(k), json.dumps(v) if not isinstance(v, str) else v) for k, v in params.items()]
    logged_params += [Param(mlflow_name(f"hardware/{k}"), str(v)) for k, v in run.get("environment", {}).items()]
    logged_params += [Param(mlflow_name(f"notebook_seconds/{nb['name']}"), f"{nb['seconds']:.1f}")
                      for nb in run.get("notebooks", []) if nb.get("seconds") is not None]
    names = {}
    for name in metrics:
        names.setdefault(mlflow_name(name), []).append(name)
    clashes = {k: v for k, v in names.items() if len(v) > 1}
    if clashes:
        raise ValueError(f"metric names that MLflow would merge: {clashes}")
    logged = [Metric(mlflow_name(k), float(v), now, 0) for k, v in metrics.items() if v is not None]
    for key, points in histories(run_dir).items():
        logged += [Metric(mlflow_name(key), value, now, step) for step, value in points]
    for i in range(0, len(logged_params), 100):  # MLflow's batch limits: 100 params, 1000 metrics
        client.log_batch(run_id, params=logged_params[i:i + 100])
    for i in range(0, len(logged), 1000):
        client.log_batch(run_id, metrics=logged[i:i + 1000])
    client.log_batch(run_id, tags=[RunTag("mbmlab.total_seconds", str(run.get("total_seconds")))])
    for name in ("index.html", "metrics.json", "params.json", "run.json"):
        if (run_dir / name).exists():
            client.log_artifact(run_id, str(run_dir / name))
    client.set_terminated(run_id, status="FINISHED" if run.get("status") in ("ok", "stopped") else "FAILED")
    return run_id
