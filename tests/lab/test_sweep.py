"""`mbmlab sweep` with a fake series (each "run" writes a run folder): the grid, its validation
before anything runs, a failed combination that does not end the sweep, the comparison."""
import json
from pathlib import Path

import pytest

from mbmlab.lab import cli

from mbmlab.lab import sweep
import helpers


def test_parse_grid_values_and_errors():
    grid = sweep.parse_grid(["lm_dim=32,64", "fusion=prefix,early", "tasks=vqa;caption,vqa", "bf16=true"])
    assert grid == {"lm_dim": [32, 64], "fusion": ["prefix", "early"], "tasks": [["vqa", "caption"], "vqa"],
                    "bf16": [True]}
    with pytest.raises(sweep.SweepError, match="key=v1,v2"):
        sweep.parse_grid(["lm_dim"])
    with pytest.raises(sweep.SweepError, match="twice"):
        sweep.parse_grid(["lm_dim=1", "lm_dim=2"])


def test_combinations_are_the_product_times_the_seeds():
    combos = sweep.combinations({"a": [1, 2], "b": ["x", "y", "z"]}, {"c": 0}, seeds=2, first_seed=5)
    assert len(combos) == 12
    assert combos[0] == {"c": 0, "a": 1, "b": "x", "seed": 5} and combos[1]["seed"] == 6
    assert combos[-1] == {"c": 0, "a": 2, "b": "z", "seed": 6}


@pytest.fixture(scope="module")
def local_ray():
    """One Ray instance of 2 CPUs for this module's sweeps (each would otherwise start its own);
    the fake series below are imported on its workers from the tests' folders."""
    import os
    import ray

    here = Path(__file__).parent
    os.environ["PYTHONPATH"] = os.pathsep.join([str(here), str(here.parent), os.environ.get("PYTHONPATH", "")])
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def fake_series(calls: Path, fail_on=None, meet: Path | None = None):
    """A series that writes a run folder (metric 0.5 + fuse_epochs/10) and records its overrides
    under ``calls`` (it runs in a Ray worker). ``meet``: it first waits up to 5 s for another run
    to be waiting there at the same time, and fails alone."""
    def run(preset, overrides, reports=None, **kwargs):
        import json
        import time
        import uuid

        from mbmlab.lab.paths import new_run_dir

        calls.mkdir(exist_ok=True)
        (calls / f"{uuid.uuid4().hex}.json").write_text(json.dumps(overrides))
        if fail_on and all(overrides.get(k) == v for k, v in fail_on.items()):
            raise RuntimeError("kernel exploded")
        if meet is not None:
            meet.mkdir(exist_ok=True)
            mine = meet / uuid.uuid4().hex
            mine.touch()
            deadline = time.time() + 5
            while not any(p != mine for p in meet.iterdir()):
                if time.time() > deadline:
                    mine.unlink()
                    raise TimeoutError("no other run at the meeting point")
                time.sleep(0.05)
            time.sleep(1.0)  # linger so the other run sees this one too
            mine.unlink()
        folder = new_run_dir(reports, label=preset)
        value = 0.5 + overrides["fuse_epochs"] / 10
        return helpers.fake_run(folder, {"vqa/exact_match": value, "vqa/exact_match/ci95_low": value - 0.01,
                                         "vqa/exact_match/ci95_high": value + 0.01}, overrides, preset,
                                total_seconds=1.0)
    return run


def called(calls: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in calls.glob("*.json")] if calls.exists() else []


def test_a_failed_combination_is_reported_and_the_sweep_goes_on(tmp_path, local_ray):
    grid = {"fuse_epochs": [1.0, 2.0, 3.0]}
    folder = sweep.run_sweep(grid, "tiny", reports=tmp_path, log=lambda *_: None, num_cpus=1,
                             run=fake_series(tmp_path / "calls", fail_on={"fuse_epochs": 2.0}))
    assert sorted(c["fuse_epochs"] for c in called(tmp_path / "calls")) == [1.0, 2.0, 3.0]
    points = json.loads((folder / "sweep.json").read_text())["points"]
    assert [p["status"] for p in points] == ["ok", "failed", "ok"]
    assert "RuntimeError: kernel exploded" in points[1]["error"]
    assert [p["attempts"] for p in points] == [1, 1, 1]  # a run that raises is not retried
    assert all(p["node"] and p["host"] for p in points)
    page = (folder / "index.html").read_text()
    assert "2 of 3 runs finished" in page and "failed: fuse_epochs=2.0" in page
    assert "data:image/png;base64," in page


def test_the_whole_grid_is_validated_before_anything_runs(tmp_path):
    with pytest.raises(sweep.SweepError, match="fusion"):
        sweep.run_sweep({"fuse_epochs": [1.0], "fusion": ["prefix", "nonsense"]}, "tiny", reports=tmp_path,
                        log=lambda *_: None, run=fake_series(tmp_path / "calls"))
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("num_cpus", [1, 2])
def test_ray_runs_as_many_at_once_as_the_cpus_allow(tmp_path, local_ray, num_cpus):
    """Each fake run waits for a second one at a meeting point: asking 1 CPU each of Ray's 2, the two
    runs meet and finish; asking 2 each, Ray runs them one after another, each waits alone and fails
    (a sweep that ignored --num-cpus, or ran its runs in order, would fail the first case)."""
    folder = sweep.run_sweep({"fuse_epochs": [1.0, 2.0]}, "tiny", num_cpus=num_cpus, reports=tmp_path,
                             log=lambda *_: None, run=fake_series(tmp_path / "calls", meet=tmp_path / "meet"))
    statuses = [p["status"] for p in json.loads((folder / "sweep.json").read_text())["points"]]
    assert statuses == (["ok"] * 2 if num_cpus == 1 else ["failed"] * 2)


def test_a_dead_worker_is_retried_once_then_recorded_and_resume_runs_only_the_unfinished(tmp_path, local_ray,
                                                                                          monkeypatch):
    """The combination fuse_epochs=2 kills its worker process (sweep.KILL_ENV, as a lost node would):
    Ray runs it a second time, then it is recorded as failed with the cause, and the others finish.
    ``resume`` then runs that one alone, into the same sweep folder."""
    monkeypatch.setenv(sweep.KILL_ENV, json.dumps({"fuse_epochs": 2.0}))
    calls = tmp_path / "calls"
    folder = sweep.run_sweep({"fuse_epochs": [1.0, 2.0, 3.0]}, "tiny", reports=tmp_path, log=lambda *_: None,
                             num_cpus=1, run=fake_series(calls))
    points = json.loads((folder / "sweep.json").read_text())["points"]
    assert [p["status"] for p in points] == ["ok", "failed", "ok"]
    assert [p["attempts"] for p in points] == [1, 2, 1]
    assert "died" in points[1]["error"] and points[1]["run"] is None
    assert sorted(c["fuse_epochs"] for c in called(calls)) == [1.0, 3.0]
    monkeypatch.delenv(sweep.KILL_ENV)
    before = {p["run"] for p in points if p["run"]}
    assert sweep.run_sweep({}, reports=tmp_path, log=lambda *_: None, num_cpus=1, resume=folder,
                           run=fake_series(calls)) == folder
    again = json.loads((folder / "sweep.json").read_text())["points"]
    assert [p["status"] for p in again] == ["ok"] * 3
    assert sorted(c["fuse_epochs"] for c in called(calls)) == [1.0, 2.0, 3.0]  # only the unfinished one ran
    assert {again[0]["run"], again[2]["run"]} == before and again[1]["run"] not in before
    assert "3 of 3 runs finished" in (folder / "index.html").read_text()


def test_the_probe_says_why_a_node_cannot_read_the_reports_folder(tmp_path):
    """The per-node probe of check_shared: a token it cannot read, or one with other content, is
    named with the reason (the node's name is added by check_shared, run on a real cluster only by
    test_a_sweep_through_the_cli_on_a_two_node_ray_cluster, where both nodes pass)."""
    assert sweep._probe("/nonexistent/mbmlab-token").startswith("FileNotFoundError")
    (tmp_path / "token").write_text("someone else's")
    assert "other content" in sweep._probe(str(tmp_path / "token"))


def test_cli_sweep_refuses_a_bad_grid(capsys):
    assert cli.main(["sweep", "--preset", "tiny", "--grid", "fusion=nonsense"]) == 2
    assert "allowed values" in capsys.readouterr().err
    assert cli.main(["sweep", "--preset", "tiny"]) == 2  # no grid, and tiny brings none


@pytest.fixture
def two_node_cluster():
    """A real Ray cluster of two nodes on this machine: a head and a worker, one CPU each, each with
    its own temp dir and process group (stopped by killing those groups, never `ray stop`, which
    would stop every Ray instance on the machine)."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import tempfile
    import time

    ray_cli = str(Path(sys.executable).parent / "ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    # token authentication, as a cluster should run (Ray ≥ 2.59 turns it on for a head when a token
    # file exists, which a local ray.init writes): every node and the driver carry the same token
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(16).hex()}
    groups = []
    try:
        for args in (["--head", f"--port={port}", "--include-dashboard=false"], [f"--address={address}"]):
            temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must stay < 108 bytes
            proc = subprocess.Popen([ray_cli, "start", *args, "--num-cpus=1", "--node-ip-address=127.0.0.1",
                                     f"--temp-dir={temp}", "--disable-usage-stats"], env=env, start_new_session=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            groups.append(proc.pid)
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, out[-2000:]
        yield address, env
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for group in groups:
                try:
                    os.killpg(group, sig)
                except ProcessLookupError:
                    pass
            time.sleep(2)


def test_a_sweep_through_the_cli_on_a_two_node_ray_cluster(tmp_path, two_node_cluster):
    """`mbmlab sweep --address …` of 4 tiny runs (until 01_collect) on two Ray nodes of one CPU:
    runs execute on both nodes (node id per run in sweep.json); the combination fuse_epochs=3 kills
    its worker every attempt — retried once, then recorded as failed; `--resume` runs it alone."""
    import subprocess
    import sys

    mbmlab = [str(Path(sys.executable).parent / "mbmlab"), "sweep"]
    reports = tmp_path / "reports"
    address, cluster_env = two_node_cluster
    common = ["--address", address, "--num-cpus", "1", "--reports", str(reports), "--no-progress"]
    env = cluster_env | {sweep.KILL_ENV: json.dumps({"fuse_epochs": 3})}
    done = subprocess.run([*mbmlab, "--preset", "tiny", "--grid", "fuse_epochs=1,2,3,4", "--until", "01_collect",
                           *common], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]  # one combination failed
    (folder,) = reports.glob("*-sweep")
    points = json.loads((folder / "sweep.json").read_text())["points"]
    assert [p["status"] for p in points] == ["ok", "ok", "failed", "ok"], points
    assert [p["attempts"] for p in points] == [1, 1, 2, 1]
    assert "died" in points[2]["error"]
    assert len({p["node"] for p in points if p["status"] == "ok"}) == 2  # the cluster's two nodes both ran runs
    for p in points[:2] + points[3:]:
        assert json.loads((Path(p["run"]) / "run.json").read_text())["status"] == "stopped"  # --until 01_collect
    runs_before = {p["run"] for p in points if p["run"]}
    resume = ["--address", address, "--num-cpus", "1", "--no-progress"]  # no --reports: beside the sweep folder
    again = subprocess.run([*mbmlab, "--resume", str(folder), *resume], env=cluster_env, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    points = json.loads((folder / "sweep.json").read_text())["points"]
    assert [p["status"] for p in points] == ["ok"] * 4
    assert {p["run"] for p in points} - runs_before == {points[2]["run"]}  # only the failed one ran again
    assert len([p for p in reports.iterdir() if (p / "run.json").exists()]) == 4  # one run folder per combination


def test_ctrl_c_records_what_finished_and_resume_runs_the_rest(tmp_path, local_ray, monkeypatch):
    """Ctrl-C while the second run is in flight (``execute`` stands in: it finishes the first run,
    then raises KeyboardInterrupt): SweepInterrupted names the resume command, sweep.json keeps the
    finished run and marks the others interrupted; ``resume`` runs those two only."""
    real = sweep.execute

    def interrupted(points, *args, on_done=lambda: None, **kwargs):
        points[0].status, points[0].run = "ok", str(helpers.fake_run(tmp_path / "first", {"m": 1.0}, {}, "tiny"))
        on_done()
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "execute", interrupted)
    with pytest.raises(sweep.SweepInterrupted, match="mbmlab sweep --resume"):
        sweep.run_sweep({"fuse_epochs": [1.0, 2.0, 3.0]}, "tiny", reports=tmp_path, log=lambda *_: None)
    (folder,) = tmp_path.glob("*-sweep")
    assert [p["status"] for p in json.loads((folder / "sweep.json").read_text())["points"]] == [
        "ok", "interrupted", "interrupted"]
    monkeypatch.setattr(sweep, "execute", real)
    sweep.run_sweep({}, log=lambda *_: None, num_cpus=1, resume=folder, run=fake_series(tmp_path / "calls"))
    assert sorted(c["fuse_epochs"] for c in called(tmp_path / "calls")) == [2.0, 3.0]
    assert [p["status"] for p in json.loads((folder / "sweep.json").read_text())["points"]] == ["ok"] * 3
