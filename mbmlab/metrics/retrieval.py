"""Retrieval recall@k from rankings (the alignment notebook computes rankings from similarities)."""
from __future__ import annotations


def recall_at_k(rankings: list[list[str]], right: list[str], ks=(1, 5, 10)) -> dict[str, float]:
    """Share of queries whose right candidate is among the first k of its ranking, per k."""
    if len(rankings) != len(right):
        raise ValueError(f"{len(rankings)} rankings for {len(right)} right answers")
    if not rankings:
        raise ValueError("no queries to score")
    return {f"recall@{k}": sum(r in ranking[:k] for ranking, r in zip(rankings, right)) / len(right) for k in ks}
