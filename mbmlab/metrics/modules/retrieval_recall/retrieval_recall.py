"""Retrieval recall@k: the share of queries whose right candidate is among the first k of their
ranking. Run it once per direction (image→text, text→image)."""
import datasets
import evaluate

from mbmlab.metrics.retrieval import recall_at_k
from mbmlab.metrics.modules import metric_info


class RetrievalRecall(evaluate.Metric):
    def _info(self):
        return metric_info(__doc__, "e.g. Radford et al. 2021 (CLIP), §3.1",
                           "predictions: per query, candidate ids ranked best first; references: the right id",
                           predictions=datasets.Sequence(datasets.Value("string")), references=datasets.Value("string"))

    def _compute(self, predictions, references, ks=(1, 5, 10)):
        return recall_at_k(predictions, references, ks)
