"""Metrics (notebooks 02, 04–07): generation, answer exact match and VQA-v2 accuracy, caption metrics, ASR
error rates, perplexity, retrieval recall, bootstrap intervals.

The names below load their module on first use (PEP 562's module ``__getattr__``): generation and
perplexity need torch and transformers (~5 s of imports), which 05's bias audit — bootstrap
intervals over CSVs of answers — never uses, so ``from mbmlab.metrics import bootstrap`` stays light.
``generate`` and ``perplexity`` are the submodules of those names (import the functions from them:
``from mbmlab.metrics.generate import generate``); a lazy function of a submodule's name would be
replaced by the submodule whenever something imported the submodule first.
"""
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # never run; for type checkers, and for the reuse key (mbmlab.lab.reuse follows these
    # statements, so a notebook that takes a name from here is keyed by the module that defines it)
    from . import bootstrap  # noqa: F401
    from .asr import error_rates, error_rates_by  # noqa: F401
    from .caption import caption_metrics, caption_scores, exact_match  # noqa: F401
    from .frames import predictions_frame  # noqa: F401
    from .generate import max_target_tokens  # noqa: F401
    from .retrieval import recall_at_k  # noqa: F401
    from .vqa import exact_match_by_type, majority_answer, majority_by_type, normalise_answer  # noqa: F401
    from .vqa_v2 import answer_accuracy, vqa_v2_accuracy  # noqa: F401

_NAMES = {
    "error_rates": "asr", "error_rates_by": "asr",
    "recall_at_k": "retrieval",
    "answer_accuracy": "vqa_v2", "vqa_v2_accuracy": "vqa_v2",
    "predictions_frame": "frames",
    "caption_metrics": "caption", "caption_scores": "caption", "exact_match": "caption",
    "max_target_tokens": "generate",
    "exact_match_by_type": "vqa", "majority_answer": "vqa", "majority_by_type": "vqa", "normalise_answer": "vqa",
}
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
