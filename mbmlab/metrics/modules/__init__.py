"""The workbench's metrics as local ``evaluate`` modules: each folder holds one script named as
the folder, so ``evaluate.load(path("vqa_accuracy"))`` loads it offline and ``evaluate.combine``
joins several. The scripts are thin: the formulas live (and are tested) in ``mbmlab.metrics``.

========================  ==============================================  ==========================
module                    predictions / references                       returns
========================  ==============================================  ==========================
``coco_caption``          captions / list of reference captions           BLEU-1..4, METEOR, ROUGE-L, CIDEr
``vqa_accuracy``          answers / list of reference answers             vqa_accuracy or exact_match
``speech_error_rate``     transcripts / reference transcripts             wer, cer
``sacrebleu_chrf``        texts / list of reference texts                 bleu, chrf (sacrebleu)
``retrieval_recall``      ranked candidate ids / the right id             recall@1, @5, @10
``corpus_perplexity``     per-sequence total NLL (nats) / token counts    perplexity
========================  ==============================================  ==========================
"""
from __future__ import annotations

from pathlib import Path

NAMES = ("coco_caption", "vqa_accuracy", "speech_error_rate", "sacrebleu_chrf", "retrieval_recall",
         "corpus_perplexity")


def metric_info(description: str, citation: str, inputs: str, predictions, references):
    """The ``evaluate.MetricInfo`` every module returns: ``predictions`` and ``references`` are
    ``datasets`` feature types (a ``Value`` or a ``Sequence``)."""
    import datasets
    import evaluate

    return evaluate.MetricInfo(description=description, citation=citation, inputs_description=inputs,
                               features=datasets.Features({"predictions": predictions, "references": references}))


def path(name: str) -> str:
    """The folder of module ``name``, for ``evaluate.load``."""
    if name not in NAMES:
        raise ValueError(f"unknown metric module {name!r}; modules: {', '.join(NAMES)}")
    return str(Path(__file__).parent / name)


def load_module(name: str, **kwargs):
    """``evaluate.load`` of one module, offline."""
    import evaluate

    return evaluate.load(path(name), **kwargs)
