"""Perplexity = exp(total NLL / total predicted tokens) from per-sequence NLL sums (nats) and
predicted-token counts — the standard definition, not exp of a mean of per-batch means."""
import math

import datasets
import evaluate

from mbmlab.metrics.modules import metric_info


class CorpusPerplexity(evaluate.Metric):
    def _info(self):
        return metric_info(__doc__, "Jurafsky & Martin, Speech and Language Processing, ch. 3",
                           "predictions: per sequence, its total negative log-likelihood in nats; "
                           "references: its number of predicted tokens",
                           predictions=datasets.Value("float64"), references=datasets.Value("int64"))

    def _compute(self, predictions, references):
        tokens = sum(references)
        if tokens <= 0:
            raise ValueError("no predicted tokens")
        return {"perplexity": math.exp(sum(predictions) / tokens), "tokens": tokens}
