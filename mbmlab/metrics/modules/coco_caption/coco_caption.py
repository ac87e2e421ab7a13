"""COCO caption metrics (pycocoevalcap, PTB tokenizer): BLEU-1..4, METEOR, ROUGE-L, CIDEr-D."""
import datasets
import evaluate

from mbmlab.metrics.caption import SPICE_UNAVAILABLE, caption_scores
from mbmlab.metrics.modules import metric_info


class CocoCaption(evaluate.Metric):
    def _info(self):
        return metric_info(__doc__ + " SPICE: " + SPICE_UNAVAILABLE + ".", "Chen et al. 2015, arXiv:1504.00325",
                           "predictions: list of captions; references: list of lists of reference captions",
                           predictions=datasets.Value("string"), references=datasets.Sequence(datasets.Value("string")))

    def _compute(self, predictions, references, meteor: bool = True):
        ids = [str(i) for i in range(len(predictions))]
        return caption_scores(dict(zip(ids, references)), dict(zip(ids, predictions)), meteor=meteor)
