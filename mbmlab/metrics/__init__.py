"""Metrics (notebooks 02, 04–07): generation, answer exact match and VQA-v2 accuracy, caption metrics, ASR
error rates, perplexity, retrieval recall, bootstrap intervals.

The names below load their module on first use (PEP 562's module ``__getattr__``): generation and
perplexity need torch and transformers (~5 s of imports), which 05's bias audit — bootstrap
intervals over CSVs of answers — never uses, so ``from mbmlab.metrics import bootstrap`` stays light.
``generate`` and ``perplexity`` are the submodules of those names (import the functions from them:
``from mbmlab.metrics.generate import generate``); a lazy function of a submodule's name would be
replaced by the submodule whenever something imported the submodule first.
"""
import ast
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

# The one list of the package's names: read by type checkers, by the reuse key (mbmlab.lab.reuse
# follows these statements, so a notebook taking a name from here is keyed by the module defining
# it), and by _lazy_names below. Never run.
if TYPE_CHECKING:
    from . import bootstrap  # noqa: F401
    from .asr import error_rates, error_rates_by  # noqa: F401
    from .caption import caption_metrics, caption_scores, exact_match  # noqa: F401
    from .frames import predictions_frame  # noqa: F401
    from .generate import max_target_tokens  # noqa: F401
    from .retrieval import recall_at_k  # noqa: F401
    from .vqa import exact_match_by_type, majority_answer, majority_by_type, normalise_answer  # noqa: F401
    from .vqa_v2 import answer_accuracy, vqa_v2_accuracy  # noqa: F401


def _lazy_names() -> dict[str, str]:
    """name → the submodule that defines it, from the ``TYPE_CHECKING`` imports above."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    (block,) = [n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING"]
    return {a.name: n.module for n in block.body if isinstance(n, ast.ImportFrom) and n.module for a in n.names}


_NAMES = _lazy_names()
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    """A listed function from its module; a submodule (``mbmlab.metrics.bootstrap``) as an attribute."""
    if name in _NAMES:
        value = getattr(import_module(f".{_NAMES[name]}", __name__), name)
    else:
        try:
            value = import_module(f".{name}", __name__)
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_NAMES})
