"""The package's layers: imports go one way (lab → apps → analyses → training → metrics →
models / data → names), no cycles, and the command line answers without loading torch."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mbmlab"
# a module's layer is its folder's; a module may import its own folder and any lower layer
LAYERS = {"names": 0, "artifacts": 0, "hardware": 0, "models": 1, "data": 1, "metrics": 2, "training": 3, "analyses": 4,
          "apps": 5, "lab": 6}
# same-layer folders that must not import each other (a model file imports no data code and back)
APART = {("models", "data"), ("data", "models")}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The mbmlab modules ``path`` imports (relative imports resolved), at any depth in the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mbmlab")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            if base.startswith("mbmlab"):
                found |= {f"{base}.{a.name}" for a in node.names} | {base}
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        targets = set()
        for target in imports(path):
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name and not name.startswith(target + "."):
                targets.add(target)
        edges[name] = targets
    return edges


def folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # None: the package's own __init__


def upward(edges) -> list[str]:
    bad = []
    for source, targets in edges.items():
        for target in targets:
            a, b = folder(source), folder(target)
            if a is None or b is None or a == b:
                continue
            if LAYERS[b] > LAYERS[a] or (a, b) in APART:
                bad.append(f"{source} → {target}")
    return sorted(bad)


def cycles(edges) -> list[list[str]]:
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_every_folder_has_a_layer():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert folders | modules == set(LAYERS)


def test_imports_go_only_down_the_layers():
    assert upward(graph()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_checks_see_a_planted_upward_import_and_a_cycle():
    edges = graph()
    planted = {**edges, "mbmlab.models.text": edges["mbmlab.models.text"] | {"mbmlab.lab.params"},
               "mbmlab.data.tasks": edges["mbmlab.data.tasks"] | {"mbmlab.models.processing_mbm"}}
    assert upward(planted) == ["mbmlab.data.tasks → mbmlab.models.processing_mbm",
                               "mbmlab.models.text → mbmlab.lab.params"]
    looped = {**edges, "mbmlab.names": {"mbmlab.artifacts"}, "mbmlab.artifacts": {"mbmlab.names"}}
    assert ["mbmlab.artifacts", "mbmlab.names"] in cycles(looped)


def loaded_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after running ``code``."""
    probe = code + "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stdout.split())


@pytest.mark.parametrize("argv", [["--help"], ["params", "--preset", "tiny"], ["run", "--set", "fusion=nonsense"],
                                  ["run", "--help"]])
def test_the_command_line_answers_without_torch(argv):
    code = (f"import sys\nsys.argv = ['mbmlab', *{argv!r}]\nfrom mbmlab.lab.cli import main\n"
            "try:\n    code = main()\nexcept SystemExit as stop:\n    code = stop.code\n"
            "assert code in (0, 2), code\n")
    loaded = loaded_after(code)
    assert "mbmlab" in loaded and not {"torch", "transformers", "datasets"} & loaded


def test_the_console_script_is_the_torch_free_cli():
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "mbmlab"]
    assert script.value == "mbmlab.lab.cli:main"


def test_the_parameter_schema_and_import_mbmlab_load_no_torch():
    assert "torch" not in loaded_after("import mbmlab, mbmlab.lab.params, mbmlab.names")


def test_the_bias_audit_notebook_imports_no_torch():
    """05_bias reads CSVs of answers: its imports (bootstrap intervals through ``mbmlab.metrics``)
    load neither torch nor transformers (~5 s a kernel when ``mbmlab.metrics`` imported every
    submodule eagerly — the mutation this catches)."""
    import json

    cells = json.loads((Path(__file__).parents[2] / "notebooks" / "05_bias.ipynb").read_text())["cells"]
    imports = "\n".join(line for cell in cells if cell["cell_type"] == "code"
                        for line in "".join(cell["source"]).splitlines() if line.startswith(("import ", "from ")))
    assert "mbmlab.analyses import bias_audit, fairness" in imports
    assert not {"torch", "transformers"} & loaded_after(imports)


def test_the_metrics_package_names_load_their_modules_when_used():
    import mbmlab.metrics as M
    from mbmlab.metrics import asr, vqa

    for name in M.__all__:
        assert getattr(M, name).__module__.startswith("mbmlab.metrics."), name
    assert M.error_rates is asr.error_rates and M.max_target_tokens.__module__ == "mbmlab.metrics.generate"
    assert M.normalise_answer is vqa.normalise_answer and M.bootstrap.__name__ == "mbmlab.metrics.bootstrap"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        M.nothing  # noqa: B018


def test_import_mbmlab_registers_the_family_when_transformers_comes_later(tokenizer, tmp_path):
    """``import mbmlab`` first, transformers afterwards (a fresh process): the Auto classes know the family."""
    import family

    model, processor = family.build(tokenizer, "gpt2", "resnet")
    model.save_pretrained(tmp_path / "fused")
    processor.save_pretrained(tmp_path / "fused")
    code = ("import sys, mbmlab\nassert 'torch' not in sys.modules\n"
            "from transformers import AutoModelForImageTextToText, AutoProcessor\n"
            f"model = AutoModelForImageTextToText.from_pretrained({str(tmp_path / 'fused')!r})\n"
            f"processor = AutoProcessor.from_pretrained({str(tmp_path / 'fused')!r})\n"
            "print(type(model).__name__, type(processor).__name__)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["MbmForConditionalGeneration", "MbmProcessor"]
