"""`mbmlab sweep` with a fake series (each "run" writes a run folder): the grid, its validation
before anything runs, a failed combination that does not end the sweep, the comparison."""
import json

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


def fake_series(calls, fail_on=None):
    def run(preset, overrides, reports=None, **kwargs):
        from mbmlab.lab.paths import new_run_dir

        calls.append(overrides)
        if fail_on and all(overrides.get(k) == v for k, v in fail_on.items()):
            raise RuntimeError("kernel exploded")
        folder = new_run_dir(reports, label=preset)
        value = 0.5 + overrides["fuse_epochs"] / 10
        return helpers.fake_run(folder, {"vqa/exact_match": value, "vqa/exact_match/ci95_low": value - 0.01,
                                         "vqa/exact_match/ci95_high": value + 0.01}, overrides, preset,
                                total_seconds=1.0)
    return run


def test_a_failed_combination_is_reported_and_the_sweep_goes_on(tmp_path):
    calls = []
    grid = {"fuse_epochs": [1.0, 2.0, 3.0]}
    folder = sweep.run_sweep(grid, "tiny", reports=tmp_path, log=lambda *_: None,
                             run=fake_series(calls, fail_on={"fuse_epochs": 2.0}))
    assert [c["fuse_epochs"] for c in calls] == [1.0, 2.0, 3.0]
    points = json.loads((folder / "sweep.json").read_text())["points"]
    assert [p["status"] for p in points] == ["ok", "failed", "ok"]
    assert "RuntimeError: kernel exploded" in points[1]["error"]
    page = (folder / "index.html").read_text()
    assert "2 of 3 runs finished" in page and "failed: fuse_epochs=2.0" in page
    assert "data:image/png;base64," in page


def test_the_whole_grid_is_validated_before_anything_runs(tmp_path):
    calls = []
    with pytest.raises(sweep.SweepError, match="fusion"):
        sweep.run_sweep({"fuse_epochs": [1.0], "fusion": ["prefix", "nonsense"]}, "tiny", reports=tmp_path,
                        log=lambda *_: None, run=fake_series(calls))
    assert calls == [] and not any(tmp_path.iterdir())


@pytest.mark.parametrize("jobs", [1, 2])
def test_jobs_runs_that_many_combinations_at_once(tmp_path, jobs):
    """Each fake run waits at a barrier for a second one: with --jobs 2 two runs meet there and
    every combination finishes; run one at a time, the first run waits alone, times out and is
    recorded as failed (the barrier would never be met by a sweep that ignored --jobs)."""
    import threading

    calls, barrier = [], threading.Barrier(2, timeout=2)
    series = fake_series(calls)

    def meeting(preset, overrides, **kwargs):
        barrier.wait()
        return series(preset, overrides, **kwargs)

    folder = sweep.run_sweep({"fuse_epochs": [1.0, 2.0, 3.0, 4.0]}, "tiny", jobs=jobs, reports=tmp_path,
                             log=lambda *_: None, run=meeting)
    statuses = [p["status"] for p in json.loads((folder / "sweep.json").read_text())["points"]]
    if jobs == 2:
        assert sorted(c["fuse_epochs"] for c in calls) == [1.0, 2.0, 3.0, 4.0] and statuses == ["ok"] * 4
    else:
        assert statuses == ["failed"] * 4 and calls == []


def test_cli_sweep_refuses_a_bad_grid(capsys):
    assert cli.main(["sweep", "--preset", "tiny", "--grid", "fusion=nonsense"]) == 2
    assert "allowed values" in capsys.readouterr().err
    assert cli.main(["sweep", "--preset", "tiny"]) == 2  # no grid, and tiny brings none
