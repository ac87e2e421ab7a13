"""Evaluation (notebook 04_evaluate): generation, VQA accuracy, caption metrics, ASR error rates, baselines."""
from .asr import error_rates, error_rates_by  # noqa: F401
from .frames import predictions_frame  # noqa: F401
from .caption import caption_metrics, caption_scores, exact_match  # noqa: F401
from .generate import generate, max_target_tokens  # noqa: F401
from .vqa import majority_answer, majority_by_type, normalise_answer, vqa_accuracy  # noqa: F401
