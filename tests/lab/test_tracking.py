"""MLflow tracking (mbmlab.lab.tracking): a run folder logged with its parameters, metrics,
per-step losses, hardware profile and report; names MLflow refuses mapped; a store that cannot
be reached warns and the run still succeeds."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import helpers
from mbmlab.lab import tracking


@pytest.fixture
def tracked(monkeypatch):
    monkeypatch.setenv(tracking.ENABLE_ENV, "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def client_for(reports: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking.tracking_uri(reports))


def test_mlflow_names_keep_what_mlflow_allows():
    assert tracking.mlflow_name("align/audio/recall@1") == "align/audio/recall_1"
    assert tracking.mlflow_name("vqa/exact_match/yes/no") == "vqa/exact_match/yes/no"
    assert tracking.mlflow_name("a b-c.d:e_f") == "a b-c.d:e_f"
    assert tracking.mlflow_name("spoken−typed (±)") == "spoken_typed ___"


def test_a_run_folder_is_logged_with_its_parameters_metrics_losses_and_report(tmp_path, tracked):
    metrics = {"vqa/exact_match": 0.9961, "align/image/recall@1": 0.5, "asr/wer": 0.048}
    params = {"fuse_epochs": 5.0, "fusion": "prefix", "tasks": ["vqa", "asr"]}
    run = helpers.fake_run(tmp_path / "20261204-000000-tiny", metrics, params, "tiny",
                           environment={"cpu": "AMD EPYC", "fp32 matmul GFLOP/s": "165"}, total_seconds=12.0,
                           notebooks=[{"name": "01_collect", "seconds": 3.25}])
    (run / "index.html").write_text("<html>report</html>")
    (run / "fuse_history.csv").write_text("loss,step,eval_loss,stage\n2.0,1,,stage1\n1.5,2,,stage1\n,2,1.7,stage1\n"
                                          "1.0,1,,stage2\n0.5,3,,stage2\n")
    run_id = tracking.log_run(run)
    client = client_for(tmp_path)
    logged = client.get_run(run_id)
    assert client.get_experiment(logged.info.experiment_id).name == "tiny"  # one experiment per preset
    assert logged.info.status == "FINISHED" and logged.info.run_name == run.name
    assert {k: v for k, v in logged.data.metrics.items() if not k.startswith("train/")} == {
        "vqa/exact_match": 0.9961, "align/image/recall_1": 0.5, "asr/wer": 0.048}
    assert logged.data.params["fusion"] == "prefix" and json.loads(logged.data.params["tasks"]) == ["vqa", "asr"]
    assert float(logged.data.params["fuse_epochs"]) == 5.0
    assert logged.data.params["hardware/fp32 matmul GFLOP/s"] == "165"
    assert logged.data.params["notebook_seconds/01_collect"] == "3.2"
    history = client.get_metric_history(run_id, "train/fuse_stage2/loss")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (3, 0.5)]
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "train/fuse_stage1/eval_loss")] == [(2, 1.7)]
    assert {a.path for a in client.list_artifacts(run_id)} == {"index.html", "metrics.json", "params.json", "run.json"}
    failed = helpers.fake_run(tmp_path / "20261204-000001-tiny", {}, params, "tiny", status="failed")
    assert client.get_run(tracking.log_run(failed, "a sweep")).info.status == "FAILED"
    assert client.get_experiment_by_name("a sweep") is not None


def test_tracking_off_logs_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(tracking.ENABLE_ENV, "0")
    run = helpers.fake_run(tmp_path / "run", {"a": 1.0}, {"seed": 0})
    assert tracking.log_run(run) is None and not (tmp_path / "mlflow.db").exists()


def test_an_unreachable_store_warns_and_the_run_still_succeeds(tmp_path, tracked):
    """A real tiny run (stopped after 01_collect) with MLFLOW_TRACKING_URI pointing at a port
    nobody listens on: exit 0, a warning naming the store, within MLflow's shortened retries."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).with_name("mbmlab")), "run", "--preset", "tiny", "--until",
                           "01_collect", "--no-progress", "--reports", str(tmp_path)], capture_output=True, text=True,
                          timeout=600, env=os.environ | {"MLFLOW_TRACKING_URI": uri, tracking.ENABLE_ENV: "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"warning: the run was not logged to MLflow ({uri})" in done.stdout
    (run,) = [p for p in tmp_path.iterdir() if (p / "run.json").exists()]
    assert json.loads((run / "run.json").read_text())["status"] == "stopped"
    assert time.perf_counter() - start < 240
