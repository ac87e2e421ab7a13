"""Caption metrics through the COCO caption evaluation code (pycocoevalcap).

Both sides go through the PTB tokenizer (Stanford CoreNLP jar, needs Java), as in the COCO
evaluation server; BLEU-1..4, METEOR (1.5, Java), ROUGE-L (LCS F-measure with β = 1.2) and
CIDEr-D use the package's scorers unchanged. SPICE is not computed: its jar needs the Stanford
CoreNLP models, which pycocoevalcap downloads on first use, and nothing is downloaded at run time.
"""
from __future__ import annotations

import shutil

from .vqa import answer_matches


class JavaMissingError(RuntimeError):
    """The PTB tokenizer needs a Java runtime."""


SPICE_UNAVAILABLE = ("SPICE needs the Stanford CoreNLP models (about 1 GB), which pycocoevalcap downloads on "
                     "first use; the workbench downloads nothing at run time")


def tokenize(references: dict[str, list[str]], predictions: dict[str, str]) -> tuple[dict, dict]:
    """Both sides through the COCO PTB tokenizer (Java), as pycocoevalcap's scorers expect them."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    if set(references) != set(predictions):
        raise ValueError("references and predictions must cover the same ids")
    if not references:
        raise ValueError("no captions to score")
    if shutil.which("java") is None:
        raise JavaMissingError("the COCO PTB tokenizer needs Java: apt-get install default-jre-headless")
    tokenizer = PTBTokenizer()
    return (tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in references.items()}),
            tokenizer.tokenize({k: [{"caption": v}] for k, v in predictions.items()}))


_METEOR = None  # one METEOR process per Python process: starting one (JVM + paraphrase tables) takes ~9 s


def meteor_scorer():
    """A running pycocoevalcap ``Meteor``, started once and reused: each ``compute_score`` sends its
    own statistics and ``EVAL`` line, so calls do not affect each other. Restarted if it exited."""
    global _METEOR
    from pycocoevalcap.meteor.meteor import Meteor

    if _METEOR is None or _METEOR.meteor_p.poll() is not None:
        _METEOR = Meteor()
    return _METEOR


def tokenized_scores(gts: dict, res: dict, meteor: bool = True) -> tuple[dict[str, float], dict[str, list]]:
    """(corpus scores, per-image CIDEr-D and ROUGE-L in ``gts`` order) of tokenized captions."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, cider_per_image = Cider().compute_score(gts, res)
    rouge, rouge_per_image = Rouge().compute_score(gts, res)
    scores = {f"BLEU-{n}": float(b) for n, b in enumerate(bleu, start=1)}
    if meteor:
        scores["METEOR"] = float(meteor_scorer().compute_score(gts, res)[0])
    scores["ROUGE-L"] = float(rouge)
    scores["CIDEr"] = float(cider)
    return scores, {"CIDEr": list(cider_per_image), "ROUGE-L": list(rouge_per_image)}


def caption_scores(references: dict[str, list[str]], predictions: dict[str, str],
                   meteor: bool = True) -> dict[str, float]:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr-D for ``predictions[id]`` against ``references[id]``
    (a list per id). ``meteor=False`` skips METEOR (a Java process)."""
    return tokenized_scores(*tokenize(references, predictions), meteor=meteor)[0]


def exact_match(references: dict[str, list[str]], predictions: dict[str, str]) -> float:
    """Share of predictions equal (after normalisation) to one of their references.

    With three-word captions ("a blue rectangle") BLEU-4 has no 4-gram to count and is ~0 for
    any model; exact match says directly how many captions are right.
    """
    hits = exact_match_hits(references, predictions)
    return sum(hits.values()) / len(hits)


def exact_match_hits(references: dict[str, list[str]], predictions: dict[str, str]) -> dict[str, float]:
    """Per id, 1.0 when the prediction matches one of its references (``answer_matches``)."""
    if not predictions:
        raise ValueError("no captions to score")
    return {k: float(any(answer_matches(predictions[k], r) for r in references[k])) for k in predictions}


def caption_metrics(references: dict[str, list[str]], predictions: dict[str, str]) -> dict[str, float]:
    """Exact match, BLEU-1..4 and CIDEr-D in one dict (the report's caption table)."""
    return {"exact_match": exact_match(references, predictions)} | caption_scores(references, predictions)
