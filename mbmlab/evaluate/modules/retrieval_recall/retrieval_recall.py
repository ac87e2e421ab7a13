"""Retrieval recall@k: the share of queries whose right candidate is among the first k of their
ranking. Run it once per direction (image→text, text→image)."""
import datasets
import evaluate

from mbmlab.evaluate.retrieval import recall_at_k


class RetrievalRecall(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="e.g. Radford et al. 2021 (CLIP), §3.1",
            inputs_description="predictions: per query, candidate ids ranked best first; references: the right id",
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("string")),
                                        "references": datasets.Value("string")}))

    def _compute(self, predictions, references, ks=(1, 5, 10)):
        return recall_at_k(predictions, references, ks)
