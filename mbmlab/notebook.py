"""What every notebook does first: validate its parameters, find its run directory, seed."""
from __future__ import annotations

import logging
import os
import random
from pathlib import Path

from . import params as P
from .paths import resolve_run_dir


def start(notebook: str, run_dir: str, needs: str | None = None, **values) -> tuple[Path, dict]:
    """Validate ``values`` against the schema, resolve the run directory, seed everything.

    ``needs`` names the artifact an earlier notebook must have written into the run directory.
    """
    import numpy as np
    import torch

    checked = P.check(notebook, values)
    for key, value in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}.items():
        os.environ.setdefault(key, value)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("transformers", "datasets"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    import transformers
    transformers.logging.set_verbosity_error()
    seed = checked.get("seed", 0)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    run = resolve_run_dir(run_dir, needs)
    print(f"{notebook}: run directory {run.name}")
    return run, checked
