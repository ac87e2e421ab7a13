"""Metrics (notebooks 02, 04–07): generation, answer exact match and VQA-v2 accuracy, caption metrics, ASR
error rates, perplexity, retrieval recall, bootstrap intervals."""
from . import bootstrap  # noqa: F401
from .asr import error_rates, error_rates_by  # noqa: F401
from .perplexity import perplexity  # noqa: F401
from .retrieval import recall_at_k  # noqa: F401
from .vqa_v2 import answer_accuracy, vqa_v2_accuracy  # noqa: F401
from .frames import predictions_frame  # noqa: F401
from .caption import caption_metrics, caption_scores, exact_match  # noqa: F401
from .generate import generate, max_target_tokens  # noqa: F401
from .vqa import exact_match_by_type, majority_answer, majority_by_type, normalise_answer  # noqa: F401
