"""`./workbench lab`: JupyterLab on notebooks/ with the project's environment registered as the
kernel "mbmlab" (the set-up registers it; `./workbench test` runs the set-up first)."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_jupyterlab_serves_the_series_with_the_project_kernel(tmp_path):
    venv = Path(sys.prefix)
    spec = venv / "share" / "jupyter" / "kernels" / "mbmlab" / "kernel.json"
    assert spec.exists(), "the mbmlab kernel is not registered: run ./workbench install (./workbench test does)"
    assert Path(json.loads(spec.read_text())["argv"][0]).resolve().parent == Path(sys.executable).resolve().parent
    port, token = _free_port(), "mbmlab-test"
    # the command ./workbench lab runs (its install steps aside), with a fixed port and token
    server = subprocess.Popen([str(Path(sys.executable).parent / "jupyter"), "lab", "--notebook-dir=notebooks",
                               "--allow-root", "--no-browser", f"--port={port}", f"--IdentityProvider.token={token}"],
                              cwd=ROOT, env=os.environ | {"JUPYTER_RUNTIME_DIR": str(tmp_path)},
                              stdout=subprocess.DEVNULL, stderr=(tmp_path / "lab.log").open("w"))
    try:
        base, deadline, specs = f"http://127.0.0.1:{port}", time.time() + 60, None
        while time.time() < deadline and specs is None:
            try:
                specs = _get(f"{base}/api/kernelspecs?token={token}")
            except OSError:
                assert server.poll() is None, (tmp_path / "lab.log").read_text()[-2000:]
                time.sleep(0.5)
        assert specs is not None, "JupyterLab did not answer within 60 s"
        assert "mbmlab" in specs["kernelspecs"]
        assert specs["kernelspecs"]["mbmlab"]["spec"]["display_name"] == "mbmlab (.venv)"
        listing = {item["name"] for item in _get(f"{base}/api/contents?token={token}")["content"]}
        assert {"01_collect.ipynb", "04_evaluate.ipynb", "07_bias_study.ipynb"} <= listing
        with urllib.request.urlopen(f"{base}/lab?token={token}", timeout=10) as page:
            assert page.status == 200 and b"JupyterLab" in page.read()
    finally:
        server.terminate()
        server.wait(timeout=20)
