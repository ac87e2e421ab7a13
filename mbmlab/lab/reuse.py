"""Reuse by content: a notebook's outputs are keyed by what determines them, and a run whose key
matches an earlier run's reuses those outputs instead of recomputing them.

The key of a notebook (``key``) covers
- the parameters it declares (``params.for_notebook``),
- the key of the notebook before it in the series (its inputs: the run folder it reads),
- the code it runs: the notebook file and every ``mbmlab`` module it imports, followed through
  the modules' own imports (``code_files``),
- the versions of Python and the libraries that compute (torch, transformers, …),
- what it reads from outside the run folder: a user folder's files (name, size, mtime),
- for ``bf16=auto``, whether this machine trains in bf16.

After a notebook finishes, the files it wrote into the run folder (not ``checkpoints/``, which
only serve resuming its own training) and the metrics it added go into
``data/cache/runs/<notebook>/<key>/`` with a ``manifest.json`` holding every file's sha256.
A later run with the same key copies them into its own folder; an entry whose files do not match
their hashes (truncated, edited, half-written) is deleted and the notebook runs again — never
used. Two runs of one key at once (a sweep's parallel runs) do not both compute it: the first
holds the key (``Cache.claim``, a file lock) until its outputs are stored, and the second waits,
then reuses them. The cache is safe to delete.
"""
from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path

from ..artifacts import load_json, log_metrics, read_metrics
from . import params as P
from .paths import data_dir

# the notebooks whose outputs are cached: the expensive upstream of every analysis
CACHED = (P.NB_COLLECT, P.NB_TRAIN, P.NB_FUSE)
# libraries whose version changes what a notebook computes
LIBRARIES = ("torch", "torchaudio", "torchcodec", "transformers", "tokenizers", "datasets", "accelerate",
             "safetensors", "numpy", "scipy", "pillow", "scikit-learn", "espeakng", "pyttsx3")
# files of a run folder that no single notebook owns
SHARED_FILES = {"run.json", "params.json", ".lock", "metrics.json", "index.html"}
NOT_CACHED_DIRS = ("checkpoints/",)
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def cache_root() -> Path:
    return Path(os.environ.get("MBMLAB_CACHE") or data_dir() / "cache" / "runs")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- the code a notebook runs
def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] != "mbmlab":
        return None
    base = PACKAGE_ROOT.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return base.with_suffix(".py") if base.with_suffix(".py").is_file() else None


def _imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Module names ``tree`` imports (statements anywhere, also inside functions, and
    ``importlib.import_module("…")`` with a literal name); relative imports resolved."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{node.module}" if node.module else package
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # kept only where a module
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.add(node.args[0].value)
    with_parents = set(names)
    for name in names:  # importing a.b.c runs a/__init__ and a/b/__init__ first
        parts = name.split(".")
        with_parents.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return with_parents


def notebook_code(notebook: Path) -> str:
    """The code cells of a notebook, IPython magics and shell lines left out."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            lines += [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def code_files(notebook: Path) -> list[Path]:
    """Every ``mbmlab`` source file the notebook runs: its imports, followed through each module's
    own imports."""
    todo = sorted(_imported(ast.parse(notebook_code(notebook)), "__notebook__", False))
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if path is None or name in seen:
            continue
        seen[name] = path
        tree = ast.parse(path.read_text(encoding="utf-8"))
        todo += sorted(_imported(tree, name, path.name == "__init__.py") - set(seen))
    return sorted(set(seen.values()))


def code_version(notebook: Path) -> str:
    digest = hashlib.sha256(Path(notebook).read_bytes())
    for path in code_files(notebook):
        digest.update(str(path.relative_to(PACKAGE_ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


# ---------------------------------------------------------------- the key
def outside_inputs(notebook: str, values: dict) -> dict | None:
    """What the notebook reads from outside the run folder, as content stamps; None when that
    cannot be stamped (a dataset on the hub), which makes the notebook uncacheable."""
    if notebook != P.NB_COLLECT or "user" not in values.get("sources", []):
        return {}
    stamps = {}
    for name in ("user_dir", "user_hub"):
        if not values.get(name):
            continue
        folder = Path(values[name]).expanduser()
        if not folder.is_dir():
            return None  # a hub name: its content is not ours to stamp
        stamps[name] = sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                              for p in folder.rglob("*") if p.is_file())
    return stamps


def key(notebook: str, values: dict, notebook_path: Path, upstream: str | None) -> tuple[str | None, dict]:
    """(key, what it covers). The key is None where the outputs must not be reused: a notebook
    not cached, an upstream without a key, inputs that cannot be stamped."""
    if notebook not in CACHED or (upstream is None and notebook != P.NB_COLLECT):
        return None, {}
    outside = outside_inputs(notebook, values)
    if outside is None:
        return None, {}
    own = P.for_notebook(notebook, values)
    covers = {"notebook": notebook, "params": own, "upstream": upstream, "code": code_version(notebook_path),
              "libraries": library_versions(), "outside": outside}
    if own.get("bf16") == "auto":
        from .. import hardware
        covers["bf16 on this machine"] = hardware.resolve_bf16("auto")
    blob = json.dumps(covers, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20], covers


# ---------------------------------------------------------------- the run folder's files
def snapshot(run_dir: Path) -> dict[str, tuple[int, int]]:
    """Every file under the run folder: relative path → (size, mtime in ns)."""
    run_dir = Path(run_dir)
    return {str(p.relative_to(run_dir)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in run_dir.rglob("*") if p.is_file()}


def written(before: dict, after: dict) -> list[str]:
    """The files a notebook wrote: new or changed since ``before``, shared files and checkpoints
    left out."""
    return sorted(rel for rel, stamp in after.items() if before.get(rel) != stamp
                  and rel not in SHARED_FILES and not rel.startswith(NOT_CACHED_DIRS))


def outputs(run_dir: Path, before: dict, metrics_before: dict) -> dict:
    """What a notebook wrote into ``run_dir`` since ``before`` (a ``snapshot``) and
    ``metrics_before``: ``files`` (``written``) and ``metrics`` (name → value, added or changed)."""
    now = read_metrics(run_dir, missing_ok=True)
    return {"files": written(before, snapshot(run_dir)),
            "metrics": {k: v for k, v in now.items() if metrics_before.get(k) != v}}


def copy_files(root: Path, files, run_dir: Path) -> None:
    """Copy ``files`` (paths relative to ``root``) into ``run_dir`` at the same relative paths."""
    for rel in files:
        target = Path(run_dir) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(root) / rel, target)


def _outside_files(notebook: str, run_dir: Path) -> dict[str, str]:
    """Files outside the run folder the outputs point at and later notebooks read: 01's dataset
    (``dataset.json``'s path), as path → sha256."""
    if notebook != P.NB_COLLECT or not (Path(run_dir) / "dataset.json").exists():
        return {}
    folder = Path(load_json(run_dir, "dataset.json")["path"])
    return {str(p): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def adopt(notebook_file: Path, from_path: str, from_run: str, run_dir: Path, note: str) -> None:
    """Make a copied executed notebook this run's: the earlier run's folder replaced by this one
    (re-executed, it must write here, not into the earlier run), and a first cell (``note``, in
    Markdown) saying where its outputs come from."""
    import nbformat

    text = Path(notebook_file).read_text(encoding="utf-8")
    text = text.replace(from_path, str(Path(run_dir).resolve())).replace(from_run, Path(run_dir).name)
    nb = nbformat.reads(text, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(note))
    nbformat.write(nb, notebook_file)


# ---------------------------------------------------------------- the cache
class Cache:
    def __init__(self, root: Path | None = None, log=print):
        self.root, self.log = Path(root or cache_root()), log

    def entry(self, notebook: str, key: str) -> Path:
        return self.root / notebook / key

    @contextlib.contextmanager
    def claim(self, notebook: str, key: str):
        """Hold ``key`` while it is looked up, computed and stored, so that another run of the same
        key (a sweep's parallel runs that differ only after it, on this machine or on a shared filesystem whose
        locks reach every node) waits and then reuses the outputs instead of computing them again. An
        advisory ``flock`` on ``<notebook>/<key>.lock``: the system drops it when its holder dies."""
        import fcntl

        lock = self.entry(notebook, key).with_name(f"{key}.lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.log(f"      another run is computing {notebook} with the same key {key}; waiting for it")
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def damage(self, entry: Path) -> str | None:
        """Why an entry cannot be used (None: whole and unchanged)."""
        try:
            manifest = json.loads((entry / "manifest.json").read_text())
            files, outside = manifest["files"], manifest["outside_files"]
        except (OSError, ValueError, KeyError) as err:
            return f"manifest.json missing or unreadable ({err})"
        for rel, digest in files.items():
            path = entry / "files" / rel
            if not path.is_file():
                return f"{path} is missing"
            if sha256(path) != digest:
                return f"{path} does not match its sha256"
        for name, digest in outside.items():
            if not Path(name).is_file():
                return f"{name}, which its outputs read, is gone"
            if sha256(Path(name)) != digest:
                return f"{name}, which its outputs read, has changed"
        return None

    def lookup(self, notebook: str, key: str) -> Path | None:
        """The entry for ``key`` when it is whole; a damaged one is deleted (and logged)."""
        entry = self.entry(notebook, key)
        if not entry.is_dir():
            return None
        problem = self.damage(entry)
        if problem is None:
            return entry
        self.log(f"      cache entry {entry} is damaged: {problem}; deleting it and running {notebook}")
        shutil.rmtree(entry, ignore_errors=True)
        return None

    def restore(self, entry: Path, run_dir: Path) -> dict:
        """Copy the entry's files into ``run_dir`` and add its metrics; returns its manifest."""
        manifest = json.loads((entry / "manifest.json").read_text())
        copy_files(entry / "files", manifest["files"], run_dir)
        log_metrics(run_dir, manifest["metrics"])
        return manifest

    def adopt(self, notebook_file: Path, manifest: dict, run_dir: Path) -> None:
        """``adopt`` with the cache's note: same parameters, inputs and code."""
        adopt(notebook_file, manifest["from_path"], manifest["from_run"], run_dir,
              f"**Reused.** This notebook was not run again: run `{manifest['from_run']}` ran it "
              f"({manifest['seconds']:.0f} s) with the same parameters, inputs and code (key `{manifest['key']}`), "
              f"and its outputs were copied here from the cache. The outputs below are that run's, with its "
              f"folder name replaced by this run's.")

    def store(self, notebook: str, key: str, covers: dict, run_dir: Path, made: dict, seconds: float,
              replace: bool = False) -> Path | None:
        """Put what ``notebook`` wrote into ``run_dir`` (``made``: its ``outputs``) into the cache
        (written to a private folder, renamed into place). An entry already there is kept (another run of a
        sweep stored the same key first, and a third may be copying it) unless ``replace``
        (``--no-reuse``). A failure (disk full) is logged, never raised."""
        entry = self.entry(notebook, key)
        if entry.exists() and not replace:
            return entry
        tmp = entry.with_name(f"{key}.partial-{os.getpid()}")
        try:
            manifest = {"notebook": notebook, "key": key, "covers": covers, "from_run": Path(run_dir).name,
                        "from_path": str(Path(run_dir).resolve()), "seconds": seconds,
                        "stored": time.strftime("%Y-%m-%d %H:%M:%S"), "metrics": made["metrics"],
                        "files": {}, "outside_files": _outside_files(notebook, Path(run_dir))}
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for rel in made["files"]:
                (tmp / "files" / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(run_dir) / rel, tmp / "files" / rel)
                manifest["files"][rel] = sha256(tmp / "files" / rel)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))
            if entry.exists():  # --no-reuse recomputed it: the new outputs replace the old
                shutil.rmtree(entry)
            tmp.rename(entry)
            return entry
        except OSError as err:
            self.log(f"      could not cache {notebook}'s outputs ({err}); the run goes on")
            shutil.rmtree(tmp, ignore_errors=True)
            return None
