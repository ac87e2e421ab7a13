"""Reuse by content (mbmlab.lab.reuse): the key covers what determines a notebook's outputs; the
cache hands them back whole or not at all; the runner reuses them."""
import functools
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from mbmlab.artifacts import read_metrics
from mbmlab.lab import params as P
from mbmlab.lab import reuse as R
from mbmlab.lab.paths import project_root
from mbmlab.lab.runner import run_series

NOTEBOOKS = project_root(Path(__file__)) / "notebooks"


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MBMLAB_CACHE", str(tmp_path / "cache"))


def other_value(name, value):
    """A valid value of parameter ``name`` other than ``value``."""
    spec = P.SCHEMA[name]
    if isinstance(value, list):
        return value[:-1] if len(value) > 1 else [c for c in (spec.choices or ("x", "y")) if c not in value][:1]
    if isinstance(value, bool):
        return not value
    if spec.choices:
        return next(c for c in spec.choices if c != value)
    if isinstance(value, (int, float)):
        low, high = spec.minimum, spec.maximum
        tries = [value + 1, value - 1] + [(value + bound) / 2 for bound in (high, low) if bound is not None]
        return next(type(value)(t) for t in tries if type(value)(t) != value
                    and (low is None or t >= low) and (high is None or t <= high))
    return value + "x"


@pytest.mark.parametrize("notebook", R.CACHED)
def test_the_key_changes_with_every_parameter_the_notebook_reads_and_no_other(notebook, monkeypatch):
    monkeypatch.setattr(R, "code_version", functools.lru_cache(R.code_version))  # the same files each time
    values = P.resolve("tiny")
    path = NOTEBOOKS / f"{notebook}.ipynb"
    upstream = None if notebook == P.NB_COLLECT else "upstream-key"
    base, covers = R.key(notebook, values, path, upstream)
    assert base and covers["params"] == P.for_notebook(notebook, values)
    for name in P.SCHEMA:
        if name == "user_dir":
            continue  # a folder: stamped by content (below)
        changed = dict(values, **{name: other_value(name, values[name])})
        reads = notebook in P.SCHEMA[name].notebooks
        assert (R.key(notebook, changed, path, upstream)[0] != base) == reads, name
    if upstream:
        assert R.key(notebook, values, path, "another-upstream")[0] != base
        assert R.key(notebook, values, path, None)[0] is None  # an input without a key: never reused


def test_the_key_follows_the_code_the_notebook_imports(tmp_path):
    files = {p.relative_to(R.PACKAGE_ROOT).as_posix() for p in R.code_files(NOTEBOOKS / "02_train.ipynb")}
    # imported by the notebook; by a module through a relative import; by mbmlab/__init__ through importlib
    for expected in ("training/align.py", "models/audio.py", "artifacts.py", "models/__init__.py"):
        assert expected in files, expected
    assert "analyses/baselines.py" not in files  # 04's, not 02's
    # 05 takes error_rates from mbmlab.metrics, whose names load lazily: the key still holds asr.py
    # (mutation: the TYPE_CHECKING imports in mbmlab/metrics/__init__.py removed → fails)
    bias = {p.relative_to(R.PACKAGE_ROOT).as_posix() for p in R.code_files(NOTEBOOKS / "05_bias.ipynb")}
    assert {"analyses/fairness.py", "metrics/asr.py", "metrics/bootstrap.py"} <= bias
    edited = tmp_path / "02_train.ipynb"
    nb = nbformat.read(NOTEBOOKS / "02_train.ipynb", as_version=4)
    values = P.resolve("tiny")
    before = R.key("02_train", values, NOTEBOOKS / "02_train.ipynb", "u")[0]
    nb.cells[-1].source += "\nprint('one more line')"
    nbformat.write(nb, edited)
    assert R.key("02_train", values, edited, "u")[0] != before


def test_a_user_folder_is_stamped_by_its_files(tmp_path):
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "metadata.csv").write_text("file_name,text\na.png,a cat\n")
    values = P.resolve("tiny", {"sources": ["user"], "user_dir": str(folder)})
    path = NOTEBOOKS / "01_collect.ipynb"
    first = R.key("01_collect", values, path, None)[0]
    (folder / "b.png").write_bytes(b"new picture")
    assert R.key("01_collect", values, path, None)[0] != first
    hub = dict(values, user_dir="", user_hub="someone/some-dataset")
    assert R.key("01_collect", hub, path, None)[0] is None  # a hub dataset cannot be stamped


def _fake_outputs(run):
    (run / "model").mkdir(parents=True)
    (run / "model" / "weights.bin").write_bytes(b"w" * 1000)
    (run / "checkpoints" / "step-1").mkdir(parents=True)
    (run / "checkpoints" / "step-1" / "state.bin").write_bytes(b"c")
    (run / "metrics.json").write_text(json.dumps({"earlier/kept": 1.0, "train/loss": 2.5}))


def test_the_cache_stores_what_the_notebook_wrote_and_restores_it(tmp_path):
    run = tmp_path / "run-a"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"earlier/kept": 1.0}))
    (run / "earlier.txt").write_text("made before")
    before, metrics_before = R.snapshot(run), read_metrics(run, missing_ok=True)
    _fake_outputs(run)
    cache = R.Cache(tmp_path / "cache")
    entry = cache.store("02_train", "k1", {"params": {}}, run, R.outputs(run, before, metrics_before), 12.0)
    manifest = json.loads((entry / "manifest.json").read_text())
    assert sorted(manifest["files"]) == ["model/weights.bin"]  # not checkpoints, not shared or earlier files
    assert manifest["metrics"] == {"train/loss": 2.5}
    other = tmp_path / "run-b"
    other.mkdir()
    (other / "metrics.json").write_text(json.dumps({"earlier/kept": 1.0}))
    assert cache.lookup("02_train", "k1") == entry and cache.lookup("02_train", "k2") is None
    cache.restore(entry, other)
    assert (other / "model" / "weights.bin").read_bytes() == b"w" * 1000
    assert read_metrics(other, missing_ok=True) == {"earlier/kept": 1.0, "train/loss": 2.5}


@pytest.mark.parametrize("damage", ["truncate", "delete", "manifest"])
def test_a_damaged_cache_entry_is_deleted_never_used(tmp_path, damage):
    run = tmp_path / "run"
    run.mkdir()
    before = R.snapshot(run)
    _fake_outputs(run)
    logged = []
    cache = R.Cache(tmp_path / "cache", log=logged.append)
    entry = cache.store("02_train", "k1", {}, run, R.outputs(run, before, {}), 1.0)
    weights = entry / "files" / "model" / "weights.bin"
    if damage == "truncate":
        weights.write_bytes(b"w" * 10)
    elif damage == "delete":
        weights.unlink()
    else:
        (entry / "manifest.json").write_text("{")
    assert cache.lookup("02_train", "k1") is None
    assert not entry.exists() and "damaged" in logged[0]


def _counting_series(folder):
    """A fake series: each notebook logs a metric from its parameters and counts its executions
    in a file outside the run folder (a reused notebook does not run)."""
    folder.mkdir()
    counts = folder / "executions.txt"
    for name in P.NOTEBOOKS:
        names = ["run_dir"] + [k for k, p in P.SCHEMA.items() if name in p.notebooks]
        params = nbformat.v4.new_code_cell("\n".join(f"{k} = None" for k in names))
        params.metadata["tags"] = ["parameters"]
        value = {"01_collect": "len(sources)", "02_train": "lm_epochs", "03_fuse": "fuse_epochs"}.get(name, "seed")
        body = (f"from mbmlab import artifacts\nartifacts.log_metrics(run_dir, {{'{name}/value': {value}}})\n"
                f"open('{name}.out', 'w').write(str({value}))\n"
                f"open({str(counts)!r}, 'a').write('{name}\\n')")
        nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(body)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / f"{name}.ipynb")
    return folder, counts


def test_a_second_run_reuses_what_did_not_change(tmp_path):
    notebooks, counts = _counting_series(tmp_path / "nb")
    quiet = dict(notebooks_dir=notebooks, reports=tmp_path / "r", progress=False, log=lambda *_: None)
    first = run_series("tiny", **quiet)
    second = run_series("tiny", **quiet)
    assert counts.read_text().split() == list(P.NOTEBOOKS) + ["04_evaluate", "05_bias"]
    assert read_metrics(second, missing_ok=True) == read_metrics(first, missing_ok=True)
    run = json.loads((second / "run.json").read_text())
    assert [nb["reused"]["from_run"] for nb in run["notebooks"][:3]] == [first.name] * 3
    assert (second / "02_train.out").read_text() == (first / "02_train.out").read_text()
    adopted = (second / "02_train.ipynb").read_text()
    assert first.name not in adopted.replace(f"run `{first.name}`", "") and str(second) in adopted
    assert "reused" in (second / "index.html").read_text()

    counts.write_text("")  # one 03 parameter changed: 01 and 02 reused, 03 onwards run
    third = run_series("tiny", {"fuse_epochs": 2.5}, **quiet)
    assert counts.read_text().split() == ["03_fuse", "04_evaluate", "05_bias"]
    assert read_metrics(third, missing_ok=True)["03_fuse/value"] == 2.5
    assert read_metrics(third, missing_ok=True)["02_train/value"] == read_metrics(first, missing_ok=True)["02_train/value"]

    counts.write_text("")  # a 02 parameter: 02 and everything after it
    run_series("tiny", {"lm_epochs": 0.5}, **quiet)
    assert counts.read_text().split() == ["02_train", "03_fuse", "04_evaluate", "05_bias"]

    counts.write_text("")
    fifth = run_series("tiny", reuse=False, **quiet)
    assert counts.read_text().split() == list(P.NOTEBOOKS)
    key = json.loads((fifth / "run.json").read_text())["notebooks"][1]["key"]
    manifest = json.loads((R.Cache().entry("02_train", key) / "manifest.json").read_text())
    assert manifest["from_run"] == fifth.name  # --no-reuse replaced the entry; a plain run keeps the first


def test_a_second_store_of_a_key_keeps_the_first_unless_told_to_replace(tmp_path):
    cache = R.Cache(tmp_path / "cache")
    for name in ("run-a", "run-b"):
        run = tmp_path / name
        run.mkdir()
        before = R.snapshot(run)
        (run / "out.txt").write_text(name)
        cache.store("02_train", "k", {}, run, R.outputs(run, before, {}), 1.0)
    assert json.loads((cache.entry("02_train", "k") / "manifest.json").read_text())["from_run"] == "run-a"
    cache.store("02_train", "k", {}, tmp_path / "run-b", R.outputs(tmp_path / "run-b", {}, {}), 1.0, replace=True)
    assert (cache.entry("02_train", "k") / "files" / "out.txt").read_text() == "run-b"


def test_a_damaged_entry_is_rebuilt_by_the_next_run(tmp_path):
    notebooks, counts = _counting_series(tmp_path / "nb")
    quiet = dict(notebooks_dir=notebooks, reports=tmp_path / "r", progress=False, log=lambda *_: None)
    first = run_series("tiny", **quiet)
    key = json.loads((first / "run.json").read_text())["notebooks"][1]["key"]
    entry = R.Cache().entry("02_train", key)
    (entry / "files" / "02_train.out").write_text("tampered")
    counts.write_text("")
    second = run_series("tiny", **quiet)
    assert counts.read_text().split() == ["02_train", "04_evaluate", "05_bias"]  # 03's key did not change
    assert (second / "02_train.out").read_text() == (first / "02_train.out").read_text()
    assert R.Cache().lookup("02_train", key) is not None  # rebuilt whole
    shutil.rmtree(R.cache_root())


def test_two_runs_of_one_key_at_once_compute_it_once(tmp_path):
    """Two runs started together (a sweep's parallel runs) with a slow 02: the second waits for the
    first's key and reuses its 01–03 instead of computing them too. Mutation: the runner's claim
    left out → 01_collect, 02_train and 03_fuse each counted twice → fails."""
    import subprocess
    import sys

    notebooks, counts = _counting_series(tmp_path / "nb")
    slow = nbformat.read(notebooks / "02_train.ipynb", as_version=4)
    slow.cells[1].source = "import time\ntime.sleep(4)\n" + slow.cells[1].source
    nbformat.write(slow, notebooks / "02_train.ipynb")
    script = ("import sys; from pathlib import Path; from mbmlab.lab.runner import run_series; "
              f"run_series('tiny', notebooks_dir=Path({str(notebooks)!r}), reports=Path({str(tmp_path / 'r')!r}), "
              "progress=False, log=lambda *a: print(*a, flush=True))")
    runs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    logs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], logs
    executed = counts.read_text().split()
    assert all(executed.count(name) == 1 for name in ("01_collect", "02_train", "03_fuse")), executed
    assert executed.count("04_evaluate") == executed.count("05_bias") == 2
    assert any("waiting for it" in log for log in logs), logs  # a run waited, and said so
    assert not list(R.cache_root().glob("*/*.partial-*"))
