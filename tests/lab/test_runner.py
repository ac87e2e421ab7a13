import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mbmlab.lab import cli

from mbmlab.lab import params as P
from mbmlab.lab.runner import NotebookFailed, run_series


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    """Each test its own cache of reused outputs (mbmlab.lab.reuse): the fake series repeat."""
    monkeypatch.setenv("MBMLAB_CACHE", str(tmp_path / "cache"))


def test_cli_refuses_a_bad_value_before_running(tmp_path, capsys):
    reports = tmp_path / "reports"
    code = cli.main(["run", "--preset", "tiny", "--set", "fusion=nonsense", "--reports", str(reports)])
    assert code == 2
    assert "allowed values: prefix" in capsys.readouterr().err
    assert not reports.exists()


def test_cli_refuses_an_unknown_key(tmp_path, capsys):
    assert cli.main(["run", "--set", "epochs=3", "--reports", str(tmp_path / "r")]) == 2
    assert "unknown parameter 'epochs'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_installed_command_exits_2_on_bad_parameter(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mbmlab.lab.cli", "run", "--preset", "tiny", "--set",
                             "fusion=nonsense", "--reports", str(tmp_path / "r")], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "allowed values" in result.stderr


def test_help_documents_run():
    out = subprocess.run([sys.executable, "-m", "mbmlab.lab.cli", "run", "--help"], capture_output=True, text=True).stdout
    for word in ("--preset", "--set", "index.html", "metrics.json", "Exit codes"):
        assert word in out


def test_params_lists_every_parameter(capsys):
    assert cli.main(["params", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in P.SCHEMA)


def _series(folder, failing=None, bodies=None):
    """A fake five-notebook series; ``failing`` raises in its second code cell; ``bodies`` gives
    a notebook other code for that cell. Each notebook that runs appends its name to ran.txt."""
    folder.mkdir(exist_ok=True)
    for name in P.NOTEBOOKS:
        names = ["run_dir"] + [k for k, p in P.SCHEMA.items() if name in p.notebooks]
        params = nbformat.v4.new_code_cell("\n".join(f"{k} = None" for k in names))
        params.metadata["tags"] = ["parameters"]
        body = ("raise ValueError('boom')" if name == failing else (bodies or {}).get(name) or
                "from mbmlab import artifacts\nartifacts.log_metrics(run_dir, {'" + name + "/ran': 1})\n"
                "open('ran.txt', 'a').write('" + name + "\\n')")
        nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(body)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / f"{name}.ipynb")
    return folder


def test_series_runs_in_order_and_writes_report(tmp_path):
    run_dir = run_series("tiny", notebooks_dir=_series(tmp_path / "nb"), reports=tmp_path / "r", progress=False,
                         log=lambda *_: None)
    metrics = (run_dir / "metrics.json").read_text()
    assert all(f"{name}/ran" in metrics for name in P.NOTEBOOKS)
    index = (run_dir / "index.html").read_text()
    assert all(f"{name}.html" in index for name in P.NOTEBOOKS)
    assert (run_dir / "params.json").exists()


def test_each_kernel_runs_over_its_own_unix_sockets_and_leaves_none_behind(tmp_path):
    """The series' kernels use the ipc transport (mbmlab.lab.kernels): over tcp, two processes
    starting kernels at once could be handed the same free port, and one kernel died with
    "Address already in use" (CI, stop 45). Mutation: the runner calling ``pm.execute_notebook`` itself
    fails here (transport tcp)."""
    body = ("import ipykernel.connect\ninfo = ipykernel.connect.get_connection_info(unpack=True)\n"
            "open('kernels.txt', 'a').write(info['transport'] + ' ' + info['ip'] + '\\n')")
    run_dir = run_series("tiny", notebooks_dir=_series(tmp_path / "nb", bodies=dict.fromkeys(P.NOTEBOOKS[:2], body)),
                         reports=tmp_path / "r", progress=False, until=P.NOTEBOOKS[1], log=lambda *_: None)
    kernels = [line.split() for line in (run_dir / "kernels.txt").read_text().splitlines()]
    assert [transport for transport, _ in kernels] == ["ipc", "ipc"]
    stems = [Path(ip) for _, ip in kernels]
    assert all(stem.is_absolute() for stem in stems) and len(set(stems)) == 2
    assert not [f for stem in stems for f in stem.parent.glob(stem.name + "*")]  # sockets removed at shutdown


def test_failing_notebook_stops_the_run_and_keeps_the_partial(tmp_path):
    with pytest.raises(NotebookFailed) as info:
        run_series("tiny", notebooks_dir=_series(tmp_path / "nb", failing="02_train"), reports=tmp_path / "r",
                   progress=False, log=lambda *_: None)
    err = info.value
    assert err.notebook == "02_train" and "ValueError: boom" in str(err) and "cell" in str(err)
    assert err.partial.exists()
    run_dir = err.partial.parent
    assert not (run_dir / "03_fuse.ipynb").exists()  # stopped there
    index = (run_dir / "index.html").read_text()
    assert "failed" in index and "02_train" in index


def test_cli_exit_code_for_a_failing_notebook(tmp_path, capsys):
    code = cli.main(["run", "--preset", "tiny", "--notebooks", str(_series(tmp_path / "nb", failing="03_fuse")),
                     "--reports", str(tmp_path / "r"), "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "03_fuse failed in cell 3 of the executed notebook (raise ValueError('boom'))" in err


def test_progress_bars_collapse_to_their_last_state():
    from mbmlab.lab.runner import collapse_progress, tidy_outputs
    text = "VQA:   0%| 0/3\rVQA:  33%| 1/3\rVQA: 100%| 3/3\ndone\n"
    assert collapse_progress(text) == "VQA: 100%| 3/3\ndone\n"
    # as the kernel sends them: one stream output per bar update, other outputs in between kept
    stream = [{"output_type": "stream", "name": "stderr", "text": f"\rVQA: {i}/3"} for i in range(4)]
    result = {"output_type": "execute_result", "data": {"text/plain": "1"}}
    tidy = tidy_outputs(stream + [result, {"output_type": "stream", "name": "stdout", "text": "ok\n"}])
    assert [o.get("text") for o in tidy] == ["VQA: 3/3", None, "ok\n"]


KILL = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"


def test_a_killed_kernel_ends_the_run_within_seconds_naming_notebook_and_cell(tmp_path):
    import time

    start = time.perf_counter()
    with pytest.raises(NotebookFailed) as info:
        run_series("tiny", notebooks_dir=_series(tmp_path / "nb", bodies={"02_train": KILL}), reports=tmp_path / "r",
                   progress=False, log=lambda *_: None)
    seconds = time.perf_counter() - start
    message = str(info.value)
    assert message.startswith("02_train failed in cell 3") and "the kernel died" in message
    assert "import os, signal" in message  # the cell's first line
    assert seconds < 60, f"took {seconds:.0f} s to notice the dead kernel"
    run = json.loads((info.value.partial.parent / "run.json").read_text())
    assert run["status"] == "failed" and "--resume" in run["error"]
    assert [nb["status"] for nb in run["notebooks"]] == ["ok", "failed", "pending", "pending", "pending"]


def test_a_cell_that_runs_too_long_fails_with_the_timeout(tmp_path):
    with pytest.raises(NotebookFailed, match=r"01_collect failed in cell 3 .*longer than the cell timeout \(3 s\)"):
        run_series("tiny", notebooks_dir=_series(tmp_path / "nb", bodies={"01_collect": "import time\ntime.sleep(60)"}),
                   reports=tmp_path / "r", progress=False, cell_timeout=3, log=lambda *_: None)


def test_resume_continues_from_the_notebook_that_failed(tmp_path):
    nb = _series(tmp_path / "nb", failing="03_fuse")
    with pytest.raises(NotebookFailed) as info:
        run_series("tiny", {"seed": 7}, notebooks_dir=nb, reports=tmp_path / "r", progress=False, log=lambda *_: None)
    run_dir = info.value.partial.parent
    _series(nb)  # the cause mended
    assert cli.main(["run", "--resume", str(run_dir), "--notebooks", str(nb), "--no-progress"]) == 0
    assert (run_dir / "ran.txt").read_text().split() == ["01_collect", "02_train", "03_fuse", "04_evaluate", "05_bias"]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "ok" and run["params"]["seed"] == 7 and len(run["resumed"]) == 1
    assert cli.main(["run", "--resume", str(run_dir), "--notebooks", str(nb)]) == 2  # nothing left to resume


def test_resume_with_a_changed_parameter_reruns_from_the_first_notebook_that_reads_it(tmp_path, capsys):
    """03 fails while fuse_learning_rate is 1e-3 (as a NaN would); resumed with it lowered, 03
    alone runs again, told to continue its trainings from their checkpoints (resume=True). A
    changed 02 parameter instead reruns 02 onwards, 03 from scratch (its checkpoints belong to
    the old 02). Mutation: changed parameters ignored on resume → 03 fails again here."""
    record = "open('ran.txt', 'a').write('{}:' + str(resume) + '\\n')"
    bodies = {"02_train": record.format("02_train"),
              "03_fuse": "if fuse_learning_rate >= 1e-3: raise FloatingPointError('non-finite loss')\n"
                         + record.format("03_fuse")}
    nb = _series(tmp_path / "nb", bodies=bodies)
    with pytest.raises(NotebookFailed):
        run_series("tiny", {"fuse_learning_rate": 1e-3}, notebooks_dir=nb, reports=tmp_path / "r", progress=False,
                   log=lambda *_: None)
    run_dir = next((tmp_path / "r").iterdir())
    assert cli.main(["run", "--resume", str(run_dir), "--set", "fuse_learning_rate=1e-4", "--notebooks", str(nb),
                     "--no-progress"]) == 0
    assert "fuse_learning_rate=0.0001 (was 0.001)" in capsys.readouterr().out
    assert (run_dir / "ran.txt").read_text().split() == ["01_collect", "02_train:False", "03_fuse:True",
                                                         "04_evaluate", "05_bias"]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["params"]["fuse_learning_rate"] == 1e-4 == json.loads((run_dir / "params.json").read_text())[
        "fuse_learning_rate"]
    assert run["resume_changes"][0]["rerun"] == ["03_fuse", "04_evaluate", "05_bias"]
    assert run["notebooks"][2]["key"] is None  # a continued training is never offered for reuse

    with pytest.raises(NotebookFailed):
        run_series("tiny", {"fuse_learning_rate": 1e-3}, notebooks_dir=nb, reports=tmp_path / "r2", progress=False,
                   log=lambda *_: None)
    run_dir = next((tmp_path / "r2").iterdir())
    assert cli.main(["run", "--resume", str(run_dir), "--set", "fuse_learning_rate=1e-4", "--set", "lm_epochs=0.5",
                     "--notebooks", str(nb), "--no-progress"]) == 0
    assert (run_dir / "ran.txt").read_text().split() == ["01_collect", "02_train:False", "02_train:False",
                                                         "03_fuse:False", "04_evaluate", "05_bias"]
    assert cli.main(["run", "--resume", str(run_dir), "--set", "fuse_epochs=nonsense"]) == 2


def test_ctrl_c_marks_the_run_interrupted_and_resume_finishes_it(tmp_path, monkeypatch, capsys):
    import papermill as pm

    real = pm.execute_notebook

    def interrupted(source, out, **kwargs):
        if "02_train" in str(source):
            raise KeyboardInterrupt
        return real(source, out, **kwargs)

    nb = _series(tmp_path / "nb")
    monkeypatch.setattr(pm, "execute_notebook", interrupted)
    assert cli.main(["run", "--preset", "tiny", "--notebooks", str(nb), "--reports", str(tmp_path / "r"),
                     "--no-progress"]) == 130
    assert "interrupted (Ctrl-C) during 02_train" in capsys.readouterr().err
    (run_dir,) = (tmp_path / "r").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert not (run_dir / ".lock").exists()
    monkeypatch.setattr(pm, "execute_notebook", real)
    assert cli.main(["run", "--resume", str(run_dir), "--notebooks", str(nb), "--no-progress"]) == 0
    assert (run_dir / "ran.txt").read_text().split() == ["01_collect", "02_train", "03_fuse", "04_evaluate", "05_bias"]


def test_a_run_killed_outright_can_be_resumed(tmp_path):
    """The runner process itself killed (SIGKILL: no finally, no handler) during 02: run.json,
    written at the start and after each notebook, still says what finished, so --resume goes on
    from 02. Mutation: run.json written only when the series ends fails here (no run.json)."""
    import subprocess
    import sys

    nb = _series(tmp_path / "nb", bodies={"02_train": "import os, signal, sys\n"  # its connection file, then the kill
                                                      "open('connection.txt', 'w').write(sys.argv[sys.argv.index('-f') + 1])\n"
                                                      "os.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(30)"})
    killed = subprocess.Popen([sys.executable, "-m", "mbmlab.lab.cli", "run", "--preset", "tiny", "--notebooks",
                               str(nb), "--reports", str(tmp_path / "r"), "--no-progress"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = killed.communicate(timeout=120)
    assert killed.returncode == -9, err[-2000:]
    (run_dir,) = (tmp_path / "r").iterdir()
    connection = Path((run_dir / "connection.txt").read_text())  # 02's kernel's, never cleaned up by the runner
    assert connection.name.startswith(f"mbmlab-kernel-{killed.pid}-")
    left = [connection, *(connection.with_name(f"{connection.stem}-ipc-{n}") for n in range(1, 6))]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "running" and [n["status"] for n in run["notebooks"]][:2] == ["ok", "pending"]
    _series(nb)  # the cause mended
    assert cli.main(["run", "--resume", str(run_dir), "--notebooks", str(nb), "--no-progress"]) == 0
    assert (run_dir / "ran.txt").read_text().split() == ["01_collect", "02_train", "03_fuse", "04_evaluate", "05_bias"]
    assert not any(path.exists() for path in left)  # swept when a kernel started after the kill (mbmlab.lab.kernels)


def test_resume_refuses_a_damaged_model_a_finished_notebook_saved(tmp_path, capsys):
    """02 finished and saved lm/, whose weights were then cut short: --resume exits 2 naming the
    file and the notebook that wrote it, instead of failing later inside 03. Mutation: resume
    without check_run_models goes on (exit 0) and fails here."""
    nb = _series(tmp_path / "nb", failing="03_fuse")
    with pytest.raises(NotebookFailed) as info:
        run_series("tiny", notebooks_dir=nb, reports=tmp_path / "r", progress=False, log=lambda *_: None)
    run_dir = info.value.partial.parent
    (run_dir / "lm").mkdir()
    (run_dir / "lm" / "model.safetensors").write_bytes(b"\x08\x00\x00")  # a header length and nothing else
    _series(nb)
    assert cli.main(["run", "--resume", str(run_dir), "--notebooks", str(nb), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{run_dir / 'lm' / 'model.safetensors'} cannot be read" in err and "rerun 02_train" in err
    assert not (run_dir / ".lock").exists()


def test_a_run_folder_is_written_by_one_process_at_a_time(tmp_path):
    import os

    from mbmlab.lab.runner import RunLocked, lock

    held = lock(tmp_path)
    assert held.read_text() == str(os.getpid())
    with pytest.raises(RunLocked, match=f"process {os.getpid()}"):
        lock(tmp_path)
    held.write_text("999999999")  # a process that is gone: its lock is stale and taken over
    assert lock(tmp_path).read_text() == str(os.getpid())


def test_a_relative_user_dir_is_anchored_where_the_command_was_given(tmp_path):
    from mbmlab.lab.runner import anchored

    (tmp_path / "pics").mkdir()
    values = P.resolve("default", {"sources": ["user"], "user_dir": "pics"})
    assert anchored(values, cwd=tmp_path)["user_dir"] == str((tmp_path / "pics").resolve())
    assert anchored(values | {"user_dir": str(tmp_path / "pics")})["user_dir"] == str((tmp_path / "pics").resolve())
    assert anchored(P.resolve("default"))["user_dir"] == ""  # nothing to anchor


def test_cli_refuses_a_user_dir_that_is_not_a_folder_before_running(tmp_path, capsys):
    code = cli.main(["run", "--reports", str(tmp_path), "--set", 'sources=["user"]', "--set", "user_dir=nowhere"])
    assert code == 2 and "user_dir='nowhere' is not a folder" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # no run folder was started


def test_until_stops_after_a_notebook_and_resume_runs_the_rest(tmp_path, capsys):
    """`--until 02_train`: 01 and 02 run, the run is `stopped` (not ok, not failed) with the command
    that continues it; `--resume` then runs 03 onwards, 03 from scratch (resume=False: it never
    started, so no checkpoint to continue). Mutations: the break removed → 03 runs in the first
    call; `continue_training` kept for a stopped run → 03 runs with resume=True."""
    record = "open('ran.txt', 'a').write('{}:' + str(resume) + '\\n')"
    nb = _series(tmp_path / "nb", bodies={"02_train": record.format("02_train"), "03_fuse": record.format("03_fuse")})
    reports = tmp_path / "r"
    assert cli.main(["run", "--preset", "tiny", "--until", "02_train", "--notebooks", str(nb), "--reports",
                     str(reports), "--no-progress"]) == 0
    run_dir = next(reports.iterdir())
    assert (run_dir / "ran.txt").read_text().split() == ["01_collect", "02_train:False"]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "stopped" and f"mbmlab run --resume {run_dir}" in run["error"]
    assert [n["status"] for n in run["notebooks"]] == ["ok", "ok", "pending", "pending", "pending"]
    assert "stopped" in (run_dir / "index.html").read_text()
    assert cli.main(["run", "--resume", str(run_dir), "--notebooks", str(nb), "--no-progress"]) == 0
    assert (run_dir / "ran.txt").read_text().split() == ["01_collect", "02_train:False", "03_fuse:False",
                                                         "04_evaluate", "05_bias"]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "ok"
    capsys.readouterr()
    assert cli.main(["run", "--until", "09_nothing", "--reports", str(tmp_path / "r2")]) == 2
    assert "not a notebook of the default series" in capsys.readouterr().err and not (tmp_path / "r2").exists()


def test_from_starts_a_new_run_that_copies_the_notebooks_before_the_first_changed_one(tmp_path, capsys):
    """`mbmlab run --from RUN --set fuse_learning_rate=…`: a new run folder; 01 and 02 (which do not
    read it) are copied from RUN — their files, their metrics, their executed notebooks made this
    run's — and only 03 onwards run; RUN is untouched; run.json, the notebook and index.html say what
    was taken; the new run can itself be started from. Refused with exit 2, creating nothing: no
    parameter changed, the first notebook changed, another preset, a run that does not record its
    notebooks' outputs, a copied file gone. Mutations, each fails: the changed-parameter check
    dropped (every notebook "taken" → refused); no ``outputs`` recorded after a notebook runs;
    ``adopt`` not called."""
    log = tmp_path / "ran.txt"  # outside the runs: which notebooks ran where
    body = ("from mbmlab import artifacts\nimport pathlib\nartifacts.log_metrics(run_dir, {{'{0}/ran': 1}})\n"
            "pathlib.Path('out').mkdir(exist_ok=True)\npathlib.Path('out/{0}.txt').write_text(run_dir)\n"
            "open(" + repr(str(log)) + ", 'a').write('{0}:' + pathlib.Path(run_dir).name + '\\n')")
    nb = _series(tmp_path / "nb", bodies={name: body.format(name) for name in P.NOTEBOOKS})
    reports = tmp_path / "r"
    first = run_series("tiny", {"fuse_learning_rate": 1e-3}, notebooks_dir=nb, reports=reports, progress=False,
                       log=lambda *_: None)
    before = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    log.unlink()
    assert cli.main(["run", "--from", str(first), "--set", "fuse_learning_rate=1e-4", "--notebooks", str(nb),
                     "--reports", str(reports), "--no-progress"]) == 0
    assert "taking 01_collect, 02_train; fuse_learning_rate=0.0001 (was 0.001)" in capsys.readouterr().out
    second = next(p for p in reports.iterdir() if p != first and (p / "run.json").exists())
    assert log.read_text().split() == [f"{n}:{second.name}" for n in P.NOTEBOOKS[2:]]  # 01, 02 did not run
    assert {p: p.read_bytes() for p in first.rglob("*") if p.is_file()} == before  # RUN untouched
    run = json.loads((second / "run.json").read_text())
    assert run["params"]["fuse_learning_rate"] == 1e-4 and run["preset"] == "tiny"
    assert run["from"] == {"run": first.name, "path": str(first), "params": {"fuse_learning_rate": [1e-3, 1e-4]},
                           "taken": ["01_collect", "02_train"]}
    assert [nb_["taken"]["from_run"] for nb_ in run["notebooks"][:2]] == [first.name] * 2
    assert not any("taken" in nb_ for nb_ in run["notebooks"][2:]) and run["status"] == "ok"
    assert (second / "out" / "02_train.txt").read_text() == str(first)  # what 02 wrote there, as it was
    assert (second / "out" / "03_fuse.txt").read_text() == str(second)
    metrics = json.loads((second / "metrics.json").read_text())
    assert all(metrics[f"{n}/ran"] == 1 for n in P.NOTEBOOKS)
    taken = nbformat.read(second / "02_train.ipynb", as_version=4)
    assert taken.cells[0].source.startswith(f"**Taken from run `{first.name}`**")
    assert str(first) not in "".join(c.source for c in taken.cells[1:])  # its folder replaced by this run's
    index = (second / "index.html").read_text()
    assert "taken</b>" in index and (second / "02_train.html").exists()
    assert f"Started from run <code>{first.name}</code>" in index and "fuse_learning_rate 0.001 → 0.0001" in index
    # a run started --from records what it took, so it can be started from in turn
    assert cli.main(["run", "--from", str(second), "--set", "fuse_learning_rate=1e-5", "--notebooks", str(nb),
                     "--reports", str(reports), "--no-progress"]) == 0
    assert "taking 01_collect, 02_train" in capsys.readouterr().out
    third = next(p for p in reports.iterdir() if p not in (first, second) and (p / "run.json").exists())
    assert [nb_["taken"]["made_in"] for nb_ in json.loads((third / "run.json").read_text())["notebooks"][:2]] == \
        [first.name] * 2  # computed there, taken twice
    assert nbformat.read(third / "01_collect.ipynb", as_version=4).cells[0].source.startswith(
        f"**Taken from run `{second.name}`** (`mbmlab run --from`): not run again. Run `{first.name}` computed it")

    made = set(reports.iterdir())
    for argv, said in ((["--from", str(first)], "ran every notebook with these parameters"),
                       (["--from", str(first), "--set", "seed=3"], "its first notebook 01_collect reads seed"),
                       (["--from", str(first), "--preset", "scenes", "--set", "fuse_epochs=2"], "RUN's own preset"),
                       (["--from", str(tmp_path / "nowhere"), "--set", "fuse_epochs=2"], "has no run.json")):
        assert cli.main(["run", *argv, "--notebooks", str(nb), "--reports", str(reports)]) == 2, argv
        assert said in capsys.readouterr().err, argv
    (first / "out" / "01_collect.txt").unlink()
    assert cli.main(["run", "--from", str(first), "--set", "fuse_epochs=2", "--reports", str(reports)]) == 2
    assert "01_collect.txt, which 01_collect wrote, is gone" in capsys.readouterr().err
    old = json.loads((first / "run.json").read_text())
    for entry in old["notebooks"]:
        entry.pop("outputs")
    (first / "run.json").write_text(json.dumps(old))
    assert cli.main(["run", "--from", str(first), "--set", "fuse_epochs=2", "--reports", str(reports)]) == 2
    assert "does not record which files 01_collect wrote" in capsys.readouterr().err
    assert set(reports.iterdir()) == made  # no refused start left a folder
