"""Kernels over Unix sockets (mbmlab.lab.kernels) for nbval too: ``-p nbval_ipc``. The runner's
kernels are checked in test_runner (test_each_kernel_runs_over_its_own_unix_sockets...)."""
import subprocess
import sys
from pathlib import Path

import nbformat

from helpers import nbval_ipc_env

TESTS = Path(__file__).resolve().parents[1]


def _nbval(folder, *plugins):
    """nbval (strict: every output compared) on a notebook whose saved output says the kernel's
    transport is ipc."""
    cell = nbformat.v4.new_code_cell("import ipykernel.connect\n"
                                     "print(ipykernel.connect.get_connection_info(unpack=True)['transport'])")
    cell.execution_count = 1
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ipc\n")]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "transport.ipynb")
    return subprocess.run([sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-p", "no:cacheprovider",
                           *plugins, "-q", "--rootdir", str(folder), str(folder / "transport.ipynb")],
                          capture_output=True, text=True, cwd=folder, env=nbval_ipc_env())


def test_the_nbval_plugin_starts_its_kernels_over_ipc(tmp_path):
    """With ``-p nbval_ipc`` the kernel reports ipc; without it, nbval's own tcp, so the same
    notebook fails: the check can tell the two apart."""
    assert _nbval(tmp_path, "-p", "nbval_ipc").returncode == 0
    plain = _nbval(tmp_path)
    assert plain.returncode == 1 and "tcp" in plain.stdout, plain.stdout[-2000:]


ROOT = TESTS.parent


def papermill_calls(source: str) -> list[int]:
    """Lines of ``source`` that execute a notebook with papermill directly (``pm.execute_notebook(…)``,
    ``papermill.execute_notebook(…)``, or the name imported from papermill) instead of through
    ``mbmlab.lab.kernels.execute_notebook``."""
    import ast

    tree = ast.parse(source)
    def papermill(module):  # papermill or one of its submodules (papermill.execute defines the function)
        return (module or "").split(".")[0] == "papermill"

    names = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             and papermill(node.module) for a in node.names if a.name == "execute_notebook"}
    modules = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for a in node.names if papermill(a.name)}
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Attribute) and node.func.attr == "execute_notebook"
         and isinstance(node.func.value, ast.Name) and node.func.value.id in modules)
        or (isinstance(node.func, ast.Name) and node.func.id in names))]


def test_every_notebook_is_executed_through_the_ipc_wrapper():
    """One place passes the kernel manager: a new call to papermill elsewhere would start its
    kernel over tcp again (the port race above). The finder itself must see the direct forms."""
    assert papermill_calls("import papermill as pm\npm.execute_notebook('a', 'b')\n") == [2]
    assert papermill_calls("from papermill import execute_notebook as run\nrun('a', 'b')\n") == [2]
    assert papermill_calls("import papermill.execute as pe\nx = 1\npe.execute_notebook('a', 'b')\n") == [3]
    assert papermill_calls("from papermill.execute import execute_notebook\nexecute_notebook('a', 'b')\n") == [2]
    assert papermill_calls("from mbmlab.lab.kernels import execute_notebook\nexecute_notebook('a', 'b')\n") == []
    found = {str(path.relative_to(ROOT)): lines for folder in ("mbmlab", "benchmarks", "tests")
             for path in sorted((ROOT / folder).rglob("*.py"))
             if (lines := papermill_calls(path.read_text()))}
    assert list(found) == ["mbmlab/lab/kernels.py"] and len(found["mbmlab/lab/kernels.py"]) == 1, found


def test_files_of_kernels_whose_process_is_gone_are_swept_and_no_others(tmp_path):
    """A kernel's connection file and five sockets carry the pid of the process that started it;
    a new kernel's manager removes those of dead processes (a runner killed outright leaves them).
    Mutation: the liveness check dropped (every pid taken as dead) removes the live one and fails."""
    import os

    from mbmlab.lab.kernels import sweep_stale

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its pid names no process now
    names = {}
    for pid in (gone.pid, os.getpid()):
        stem = f"mbmlab-kernel-{pid}-{'ab' * 16}"
        names[pid] = [f"{stem}.json"] + [f"{stem}-ipc-{n}" for n in range(1, 6)]
    others = ["mbmlab-kernel-0123456789abcdef0123456789abcdef.json", "mbmlab-kernel-12-notauuid.json", "notes.txt"]
    for name in names[gone.pid] + names[os.getpid()] + others:
        (tmp_path / name).write_text("")
    removed = sweep_stale(str(tmp_path))
    assert sorted(Path(p).name for p in removed) == sorted(names[gone.pid])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[os.getpid()] + others)
    assert sweep_stale(str(tmp_path / "absent")) == []


def test_a_kernel_started_after_a_killed_one_sweeps_its_files(monkeypatch):
    """End to end through the kernel manager: files left by a dead process in the socket folder are
    gone once the next connection file is named, which carries this process's pid."""
    import os
    import shutil
    import tempfile

    from mbmlab.lab.kernels import IpcKernelManager

    short = Path(tempfile.mkdtemp(prefix="k", dir="/tmp"))  # socket paths must stay short (tmp_path is long)
    try:
        monkeypatch.setattr(tempfile, "tempdir", str(short))
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        left = short / f"mbmlab-kernel-{gone.pid}-{'cd' * 16}-ipc-3"
        left.write_text("")
        connection = Path(IpcKernelManager().connection_file)
        assert connection.parent == short and connection.name.startswith(f"mbmlab-kernel-{os.getpid()}-")
        assert not left.exists()
    finally:
        shutil.rmtree(short)
