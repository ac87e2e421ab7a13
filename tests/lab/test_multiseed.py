"""``mbmlab run --seeds N``: one run per seed, then mean ± sample std and the t interval over seeds per shared metric."""
import json
from pathlib import Path

import pytest

import helpers
from mbmlab.lab import cli, multiseed


def fake_run(folder, metrics):
    return helpers.fake_run(folder, metrics)


def test_summary_is_mean_and_sample_std_of_shared_metrics(tmp_path):
    # accuracy 0.8, 0.9, 1.0: mean 0.9; deviations −0.1, 0, 0.1 → sample variance 0.02/2 = 0.01, std 0.1
    runs = [fake_run(tmp_path / f"r{k}", {"vqa/exact_match": v, "vqa/exact_match/ci95_low": v - 0.05, **extra})
            for k, (v, extra) in enumerate([(0.8, {"only/here": 1.0}), (0.9, {}), (1.0, {})])]
    table = multiseed.summarise(runs)
    assert list(table.index) == ["vqa/exact_match"]  # intervals and metrics not in every run are left out
    row = table.loc["vqa/exact_match"]
    assert row["mean"] == pytest.approx(0.9) and row["std"] == pytest.approx(0.1) and row["n"] == 3
    # t(2, 0.975) = 4.3027: 0.9 ± 4.3027 · 0.1 / √3 = 0.9 ± 0.2484
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx((0.6516, 1.1484), abs=1e-4)
    assert row["r0"] == 0.8
    folder = multiseed.write_summary(runs, "tiny", [0, 1, 2], reports=tmp_path / "reports")
    saved = json.loads((folder / "seeds.json").read_text())
    assert saved["seeds"] == [0, 1, 2] and saved["metrics"]["vqa/exact_match"]["std"] == pytest.approx(0.1)
    page = (folder / "index.html").read_text()
    assert "0.9000 ± 0.1000" in page and "[0.6516, 1.1484]" in page
    assert "mean ± 4.30 · std / √3 (Student's t with 2 degrees of freedom): with so few seeds" in page
    two = (multiseed.write_summary(runs[:2], "tiny", [0, 1], reports=tmp_path / "reports") / "index.html").read_text()
    assert "mean ± 12.71 · std / √2 (Student's t with 1 degree of freedom): with so few" in two


def test_cli_runs_one_series_per_seed(tmp_path, monkeypatch):
    """Each seed a Ray task (a local Ray instance of the command's own): the fake series records its
    seed in a file (it runs in a worker process); a seed that fails makes the command exit 1 with the
    others summarised."""
    import os

    here = Path(__file__).parent
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(here), str(here.parent), os.environ.get("PYTHONPATH", "")]))
    seen = tmp_path / "seen"
    seen.mkdir()

    def fake_series(preset, overrides, **kwargs):
        (seen / str(overrides["seed"])).touch()
        if overrides["seed"] == 6:
            raise RuntimeError("seed 6 exploded")
        return fake_run(tmp_path / f"run-{overrides['seed']}", {"m": float(overrides["seed"])})

    monkeypatch.setattr("mbmlab.lab.runner.run_series", fake_series)
    assert cli.main(["run", "--preset", "tiny", "--seeds", "3", "--set", "seed=5", "--reports", str(tmp_path)]) == 1
    assert sorted(int(p.name) for p in seen.iterdir()) == [5, 6, 7]
    saved = json.loads((next(tmp_path.glob("*-tiny-seeds")) / "seeds.json").read_text())
    assert saved["seeds"] == [5, 7] and saved["metrics"]["m"]["mean"] == pytest.approx(6.0)
    assert cli.main(["run", "--seeds", "0"]) == 2
