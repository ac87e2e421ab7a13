"""Rewrite the parameters cell of each notebook of the series from the schema
(mbmlab/lab/params.py), keeping each cell's run_dir help text. Run after adding a parameter;
``notebook.start(name, run_dir, globals())`` then picks the new one up by itself."""
import nbformat

from mbmlab.lab import params as P

for name in P.ALL:
    path = f"notebooks/{name}.ipynb"
    nb = nbformat.read(path, 4)
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            cell.source = P.parameters_cell(name, cell.source.splitlines()[0].split("# ", 1)[1])
    nbformat.write(nb, path)
    print("synced", path)
