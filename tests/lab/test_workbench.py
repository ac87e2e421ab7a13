"""`./workbench`'s uv install reads the registries pip is configured with (`pip config list`): the
script embedded in the workbench translates them into uv's flags (line 1) and the CA bundle uv is
to trust (line 2), environment over file, as pip does."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def uv_settings(env: dict) -> list[str]:
    script = re.search(r"<<'PY'\n(.*?)\nPY\n", (ROOT / "workbench").read_text(), re.S).group(1)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return subprocess.run([sys.executable, "-c", script], env=clean | env, capture_output=True, text=True,
                          check=True).stdout.split("\n")[:2]


def test_uv_gets_pips_indexes_the_environment_over_the_file(tmp_path):
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://file.example/simple\nfind-links = /from-file\n"
                    "constraint = /etc/limits.txt\ntrusted-host = file.example\ncert = /file/ca.pem\n")
    args, cert = uv_settings({"PIP_CONFIG_FILE": str(conf), "PIP_FIND_LINKS": "/from-env /wheels",
                              "PIP_EXTRA_INDEX_URL": "file:///a file:///b"})
    assert args == ("--index-url https://file.example/simple --extra-index-url file:///a --extra-index-url file:///b "
                    "--find-links /from-env --find-links /wheels --constraint /etc/limits.txt "
                    "--allow-insecure-host file.example")
    assert cert == "/file/ca.pem"
    assert uv_settings({"PIP_CONFIG_FILE": str(conf), "PIP_CERT": "/env/ca.pem"})[1] == "/env/ca.pem"


def test_uv_gets_no_index_and_nothing_else_when_pip_has_nothing(tmp_path):
    assert uv_settings({"PIP_CONFIG_FILE": os.devnull}) == ["", ""]
    assert uv_settings({"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/w"}) == \
        ["--find-links /w --no-index", ""]
