"""VQA-v2 accuracy (min(#humans / 3, 1) over the 10-choose-9 subsets) with its answer
normalisation; exact match, and named so, when every item has one reference answer."""
import datasets
import evaluate

from mbmlab.metrics.vqa_v2 import vqa_v2_accuracy
from mbmlab.metrics.modules import metric_info


class VqaAccuracy(evaluate.Metric):
    def _info(self):
        return metric_info(__doc__, "Antol et al. 2015; Goyal et al. 2017",
                           "predictions: list of answers; references: list of lists of reference answers",
                           predictions=datasets.Value("string"), references=datasets.Sequence(datasets.Value("string")))

    def _compute(self, predictions, references):
        return vqa_v2_accuracy(predictions, references)
