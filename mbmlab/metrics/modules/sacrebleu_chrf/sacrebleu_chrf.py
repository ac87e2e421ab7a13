"""Corpus BLEU and chrF through sacrebleu (its default 13a tokenizer; chrF with character 6-grams,
β = 2), on the 0–100 scale sacrebleu reports."""
import datasets
import evaluate

from mbmlab.metrics.modules import metric_info


class SacrebleuChrf(evaluate.Metric):
    def _info(self):
        return metric_info(__doc__, "Post 2018, WMT; Popović 2015, WMT",
                           "predictions: list of texts; references: list of lists of reference texts (the same "
                           "number per prediction)",
                           predictions=datasets.Value("string"), references=datasets.Sequence(datasets.Value("string")))

    def _compute(self, predictions, references):
        import sacrebleu

        counts = {len(r) for r in references}
        if len(counts) != 1:
            raise ValueError("sacrebleu needs the same number of references for every prediction")
        streams = [list(s) for s in zip(*references)]  # one stream per reference position
        return {"bleu": sacrebleu.corpus_bleu(predictions, streams).score,
                "chrf": sacrebleu.corpus_chrf(predictions, streams).score}
