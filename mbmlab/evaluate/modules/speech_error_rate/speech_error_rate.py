"""Corpus word and character error rates (jiwer) after lower-casing, dropping punctuation and
collapsing whitespace on both sides."""
import datasets
import evaluate

from mbmlab.evaluate.asr import error_rates


class SpeechErrorRate(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="jiwer (https://github.com/jitsi/jiwer)",
            inputs_description="predictions: list of transcripts; references: list of reference transcripts",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}))

    def _compute(self, predictions, references):
        return error_rates(references, predictions)
