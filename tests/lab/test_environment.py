"""environment.yml and pyproject.toml describe the same project."""
import re
import tomllib

import yaml

from mbmlab.lab.paths import project_root


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ ;\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_pyproject_dependencies():
    root = project_root()
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    wanted = {r.replace(" ", "") for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    env = yaml.safe_load((root / "environment.yml").read_text())
    assert env["name"] == "mbmlab"
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {r.replace(" ", "") for r in pip if not r.startswith("-e")}
    assert listed == wanted, (listed ^ wanted)
    assert "-e ." in pip
    assert {_name(r) for r in listed} >= {"torch", "transformers", "datasets", "papermill", "nbval"}
