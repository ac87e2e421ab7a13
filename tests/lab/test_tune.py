"""`mbmlab tune` (mbmlab.lab.tune): the search space parsed and validated against the schema before
anything runs; a real search on the tiny preset, interrupted and resumed, that beats its first trial."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mbmlab.lab import tune


def test_the_space_is_parsed_and_checked_against_the_schema():
    dims = tune.parse_space(["fuse_learning_rate=1e-4:1e-2:log", "fuse_epochs=2:6", "projector=linear,mlp2x_gelu",
                             "lm_layers=1:4"], "tiny")
    assert [(d.key, d.low, d.high, d.log, d.choices) for d in dims] == [
        ("fuse_learning_rate", 1e-4, 1e-2, True, None), ("fuse_epochs", 2.0, 6.0, False, None),
        ("projector", None, None, False, ("linear", "mlp2x_gelu")), ("lm_layers", 1, 4, False, None)]
    assert type(dims[3].distribution()).__name__ == "IntDistribution" and dims[0].distribution().log
    for bad, message in [("fuse_epochs", "key=low:high"), ("nonsense=1:2", "unknown parameter"),
                         ("fuse_epochs=4:2", "low < high"), ("fuse_learning_rate=0:1:log", "low > 0"),
                         ("fusion=1:2", "int or float"), ("projector=linear", "at least two"),
                         ("projector=linear,nonsense", "allowed values"), ("fuse_epochs=-1:2", "fuse_epochs")]:
        with pytest.raises(tune.TuneError, match=message):
            tune.parse_space([bad], "tiny")
    assert tune.Dimension("fuse_epochs", 2.0, 6.0).contains(2.0) and not tune.Dimension("fuse_epochs", 2.0, 6.0).contains(7)


def finished(folder: Path) -> pd.DataFrame:
    path = folder / "trials.csv"
    table = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["state"])
    return table[table["state"] == "COMPLETE"]


def test_a_tiny_search_interrupted_and_resumed_beats_its_first_trial(tmp_path):
    """Trial 0 is the preset's configuration, here a fused learning rate of 1e-5 that barely trains
    (about 0.35 of the validation questions against about 0.56 at 2.5e-3, measured): a search of 4
    trials, 2 at a time, over 1e-5…3e-3 must find a better validation value. Ctrl-C after two
    trials finish; `--resume` keeps them and completes the four, then the best runs once on test."""
    mbmlab = str(Path(sys.executable).with_name("mbmlab"))
    cheap = ["--set", "fuse_learning_rate=1e-5", "--set", "fuse_epochs=1", "--set", "fuse_stage1_epochs=0.25",
             "--set", "baselines=[]", "--set", "explain_images=0", "--set", "pocketsphinx_clips=0",
             "--set", 'tasks=["vqa"]']
    reports = tmp_path / "reports"
    first = subprocess.Popen([mbmlab, "tune", "--preset", "tiny", *cheap, "--space", "fuse_learning_rate=1e-5:3e-3:log",
                              "--metric", "vqa/exact_match", "--trials", "4", "--parallel", "2", "--num-cpus", "1",
                              "--reports", str(reports), "--no-progress"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    deadline = time.time() + 400
    folder = None
    while time.time() < deadline and first.poll() is None:
        folders = list(reports.glob("*-tune")) if reports.exists() else []
        if folders and len(finished(folders[0])) >= 2:
            folder = folders[0]
            break
        time.sleep(1)
    assert folder is not None, first.communicate(timeout=60)[0][-3000:]
    first.send_signal(signal.SIGINT)  # Ctrl-C
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 130 and "mbmlab tune --resume" in out, out[-3000:]
    before = finished(folder)
    assert len(before) in (2, 3) and not (folder / "best.json").exists()
    again = subprocess.run([mbmlab, "tune", "--resume", str(folder), "--num-cpus", "1", "--no-progress"],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    trials = pd.read_csv(folder / "trials.csv")
    done = trials[trials["state"] == "COMPLETE"]
    assert len(done) == 4
    kept = done.set_index("trial").loc[before["trial"], "value"]
    assert list(kept) == list(before["value"])  # the trials finished before Ctrl-C were kept, not rerun
    assert done.set_index("trial").loc[0, "fuse_learning_rate"] == 1e-5  # trial 0: the preset's configuration
    best = json.loads((folder / "best.json").read_text())
    assert best["validation_value"] == done["value"].max() > done.set_index("trial").loc[0, "value"]
    assert best["final_status"] == "ok" and 0 <= best["test_value"] <= 1
    final = json.loads((Path(best["final_run"]) / "params.json").read_text())
    assert final["evaluate_split"] == "test" and final["fuse_learning_rate"] == best["params"]["fuse_learning_rate"]
    for run in done["run"]:  # every trial chose on validation
        assert json.loads((Path(run) / "params.json").read_text())["evaluate_split"] == "validation"
    # the resumed tune (no --reports given) put its trials and final run beside the tune folder
    assert {Path(r).parent for r in [*done["run"], best["final_run"]]} == {reports}
    page = (folder / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 1 and "the final run on test" in page  # history (importance: 2+ parameters)


def test_the_report_shows_history_and_importance_from_two_parameters(tmp_path):
    """An in-memory study of 4 trials over two parameters, the value driven by one of them: the page
    inlines both plots and fANOVA ranks that parameter first; with one parameter only the history."""
    import optuna

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("a", 0, 1) * 10 + 0.01 * t.suggest_float("b", 0, 1), n_trials=8)
    tune.write_report(tmp_path, study, "m", "max")
    page = (tmp_path / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "fANOVA" in page
    importance = optuna.importance.get_param_importances(study)
    assert list(importance)[0] == "a"
    assert len(pd.read_csv(tmp_path / "trials.csv")) == 8
