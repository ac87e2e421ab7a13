"""Rewrite the parameters cell and the notebook.start(...) call of the series' notebooks from
the schema (mbmlab/params.py), keeping each cell's run_dir help text. Run after adding a parameter."""
import re

import nbformat

from mbmlab import params as P

for name in P.ALL:
    path = f"notebooks/{name}.ipynb"
    nb = nbformat.read(path, 4)
    names = [n for n, p in P.SCHEMA.items() if name in p.notebooks]
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            cell.source = P.parameters_cell(name, cell.source.splitlines()[0].split("# ", 1)[1])
        elif cell.cell_type == "code" and f'notebook.start("{name}"' in cell.source:
            call = re.search(rf'notebook\.start\("{name}", run_dir(, needs="[^"]+")?[^\n]*\)', cell.source).group(0)
            needs = re.search(r', needs="[^"]+"', call)
            new = f'notebook.start("{name}", run_dir{needs.group(0) if needs else ""}, ' + \
                ", ".join(f"{n}={n}" for n in names) + ")"
            cell.source = cell.source.replace(call, new)
    nbformat.write(nb, path)
    print("synced", path)
