"""Evaluation (notebook 04_evaluate): generation, VQA accuracy, caption metrics, baselines."""
from .caption import caption_metrics, caption_scores, exact_match  # noqa: F401
from .generate import generate  # noqa: F401
from .vqa import majority_answer, majority_by_type, normalise_answer, vqa_accuracy  # noqa: F401
