"""Corpus word and character error rates (jiwer) after lower-casing, dropping punctuation and
collapsing whitespace on both sides."""
import datasets
import evaluate

from mbmlab.metrics.asr import error_rates
from mbmlab.metrics.modules import metric_info


class SpeechErrorRate(evaluate.Metric):
    def _info(self):
        return metric_info(__doc__, "jiwer (https://github.com/jitsi/jiwer)",
                           "predictions: list of transcripts; references: list of reference transcripts",
                           predictions=datasets.Value("string"), references=datasets.Value("string"))

    def _compute(self, predictions, references):
        return error_rates(references, predictions)
