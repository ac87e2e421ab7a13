"""The notebooks stay thin and start the same way: no code cell carries more than 10 lines of
logic (blank lines, comments and imports aside; the parameters cell aside), each has one
parameters cell written from the schema and starts with ``notebook.start(name, run_dir, globals())``."""
import json
from pathlib import Path

import pytest

from mbmlab.lab import params as P

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
MOST = 10


def logic_lines(source: str) -> int:
    return sum(1 for line in source.splitlines()
               if line.strip() and not line.strip().startswith(("#", "import ", "from ")))


def code_cells(name: str):
    cells = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]
    return [c for c in cells if c["cell_type"] == "code"]


def test_the_folder_holds_the_series_and_nothing_else():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(P.ALL)


def test_logic_lines_counts_what_it_should():
    assert logic_lines("import x\nfrom y import z\n\n# a comment\nrun = 1\nif run:\n    print(run)\n") == 3


@pytest.mark.parametrize("name", P.ALL)
def test_no_code_cell_carries_more_than_ten_lines_of_logic(name):
    sizes = [(k, logic_lines("".join(c["source"]))) for k, c in enumerate(code_cells(name))
             if "parameters" not in c.get("metadata", {}).get("tags", [])]
    assert [(k, n) for k, n in sizes if n > MOST] == []


@pytest.mark.parametrize("name", P.ALL)
def test_one_parameters_cell_from_the_schema_and_a_short_start(name):
    cells = code_cells(name)
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    source = "".join(tagged[0]["source"])
    assert source == P.parameters_cell(name, source.splitlines()[0].split("# ", 1)[1])
    start = [line for c in cells for line in "".join(c["source"]).splitlines() if "notebook.start(" in line]
    assert start == [f'run, params = notebook.start("{name}", run_dir, globals())']


@pytest.mark.parametrize("name", P.ALL)
def test_committed_without_outputs(name):
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code_cells(name))


@pytest.mark.parametrize("name", P.ALL)
def test_no_import_takes_a_parameter_name(name):
    """``notebook.start`` reads the parameters from the notebook's globals: an import named like
    a parameter (``from mbmlab.analyses import baselines`` in 04) would hide it."""
    import ast

    parameters = {k for k, p in P.SCHEMA.items() if name in p.notebooks}
    imported = set()
    for cell in code_cells(name):
        for node in ast.walk(ast.parse("".join(cell["source"]))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imported |= {(a.asname or a.name).split(".")[0] for a in node.names}
    assert imported & parameters == set()
