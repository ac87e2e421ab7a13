"""What every notebook does first: ``run, params = notebook.start("03_fuse", run_dir, globals())``
picks the parameters the schema declares for that notebook out of its namespace, validates them,
finds the run directory (which must hold what the earlier notebook wrote), and seeds."""
from __future__ import annotations

import logging
import os
import random
import sys
from pathlib import Path

from .. import hardware
from . import params as P
from .paths import resolve_run_dir

# the artifact an earlier notebook of the series must have written into the run directory
NEEDS = {P.NB_COLLECT: None, P.NB_TRAIN: "dataset.json", P.NB_FUSE: "lm", P.NB_EVALUATE: "fused",
         P.NB_BIAS: "evaluated.json", P.NB_FUSION_STUDY: "lm", P.NB_BIAS_STUDY: "lm"}


def declared(notebook: str, namespace: dict) -> dict:
    """The values of ``notebook``'s schema parameters in ``namespace`` (its parameters cell)."""
    names = [name for name, p in P.SCHEMA.items() if notebook in p.notebooks]
    missing = [name for name in names if name not in namespace]
    if missing:
        raise P.ParameterError(f"{notebook}'s parameters cell does not define {missing}; "
                               f"rewrite it with `python tools/sync_parameters.py`")
    shadowed = [name for name in names if type(namespace[name]).__name__ == "module"]
    if shadowed:
        raise P.ParameterError(f"{notebook} imports a module under the parameter name {shadowed}; "
                               f"import it under another name")
    return {name: namespace[name] for name in names}


def start(notebook: str, run_dir: str, namespace: dict) -> tuple[Path, dict]:
    """Validate the notebook's parameters (taken from ``namespace``, usually ``globals()``), resolve
    the run directory, seed Python, NumPy and torch. Returns (run directory, checked parameters)."""
    import numpy as np
    import torch

    if notebook not in NEEDS:
        raise P.ParameterError(f"unknown notebook {notebook!r}; the series: {', '.join(NEEDS)}")
    checked = P.check(notebook, declared(notebook, namespace))
    for key, value in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}.items():
        os.environ.setdefault(key, value)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("transformers", "datasets"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # transformers reads its verbosity from the environment when first imported: a notebook that
    # never imports it (01_collect) is spared its ~2.5 s of imports
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "transformers" in sys.modules:
        sys.modules["transformers"].logging.set_verbosity_error()
    seed = checked.get("seed", 0)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    run = resolve_run_dir(run_dir, NEEDS[notebook])
    threads = hardware.set_threads()
    print(f"{notebook}: run directory {run.name}; {threads} torch threads")
    if "bf16" in checked:  # decided once, before any training; a bf16 forced onto a CPU without it warns here
        setting, checked["bf16"] = checked["bf16"], hardware.resolve_bf16(checked["bf16"])
        print(f"bf16={setting}: training in {'bf16 autocast' if checked['bf16'] else 'fp32'}")
    return run, checked
