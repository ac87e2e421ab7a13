import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

# the shared helpers (helpers.py, family.py) import by name from every test folder
sys.path.insert(0, str(Path(__file__).parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# the runs' cache (mbmlab.lab.reuse) of this test session: shared by its runs, never the project's data/
# MLflow tracking (mbmlab.lab.tracking) off for the many runs of the tests; its own tests turn it on
os.environ.setdefault("MBMLAB_MLFLOW", "0")
if "MBMLAB_CACHE" not in os.environ:  # made once (pytest-xdist's workers inherit it) and removed at exit
    os.environ["MBMLAB_CACHE"] = tempfile.mkdtemp(prefix="mbmlab-test-cache-")
    atexit.register(shutil.rmtree, os.environ["MBMLAB_CACHE"], ignore_errors=True)
# pytest-xdist (`-n N`, see pyproject's addopts): the cores are shared out among the workers, and the
# notebooks' kernels and scripts a worker starts inherit its share (mbmlab.hardware keeps OMP_NUM_THREADS)
if os.environ.get("PYTEST_XDIST_WORKER") and not os.environ.get("OMP_NUM_THREADS"):
    from mbmlab.hardware import usable_cores  # affinity and cgroup quota, as the notebooks count them (no torch)

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ["OMP_NUM_THREADS"] = str(max(1, usable_cores() // workers))

import pytest  # noqa: E402
import torch  # noqa: E402

from mbmlab.models import text  # noqa: E402

LINES = [
    "question: what color is the shape? answer: blue",
    "question: is there a red shape? answer: no",
    "question: what shape is in the image? answer: circle",
    "caption: a blue rectangle",
    "caption: a red circle",
    "transcribe: what color is the shape?",
] * 20


FIRST = "tests/series/test_notebooks.py"  # the tests sharing the tiny series run: the longest module (~9 min)
# then the next longest (real tiny searches and a Ray cluster, ~3 and ~2.5 min), so that the worker
# that is not running FIRST takes them early and neither worker ends on a long module
EARLY = ("tests/lab/test_tune.py", "tests/lab/test_sweep.py", "tests/series/test_series_upstream.py")


def pytest_collection_modifyitems(config, items):
    """The longest module first: under xdist (``--dist loadscope --no-loadscope-reorder``, each
    module whole on one worker, in this order) one worker starts it while the other takes the rest."""
    def rank(item) -> int:
        if item.nodeid.startswith(FIRST):
            return 0
        return next((1 + i for i, name in enumerate(EARLY) if item.nodeid.startswith(name)), len(EARLY) + 1)

    items.sort(key=rank)  # stable: the order within a module is kept


@pytest.fixture(scope="session")
def tokenizer():
    return text.train_tokenizer(LINES, 300)


@pytest.fixture(scope="session")
def pixels():
    torch.manual_seed(1)
    return torch.randn(3, 3, 32, 32)
