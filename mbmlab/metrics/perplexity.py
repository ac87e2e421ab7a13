"""Perplexity as the standard definition has it: exp(total negative log-likelihood / total
predicted tokens) over a whole text set (e.g. Jurafsky & Martin, "Speech and Language
Processing", ch. 3). Not exp of the mean of per-batch mean losses, which weights a short batch's
tokens more than a long batch's."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..models.processing_mbm import IGNORE_INDEX


@torch.no_grad()
def perplexity(model, dataset, collator, batch_size: int = 64) -> dict[str, float]:
    """``{"nll": total NLL in nats, "tokens": predicted tokens, "perplexity": exp(nll / tokens),
    "sequence_nll": [...], "sequence_tokens": [...]}`` for a causal LM over ``dataset`` batched by
    ``collator`` (``input_ids``, ``attention_mask``, ``labels`` with ``IGNORE_INDEX`` where nothing
    is predicted). Each label predicts from the positions before it (the usual shift by one). The
    per-sequence sums let a bootstrap resample sequences."""
    model.eval()
    sequence_nll: list[float] = []
    sequence_tokens: list[int] = []
    for start in range(0, len(dataset), batch_size):
        batch = collator([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels = batch["labels"][:, 1:]
        logits = logits[:, :-1].float()
        nll = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")  # (B, T)
        sequence_nll += nll.sum(1).tolist()
        sequence_tokens += (labels != IGNORE_INDEX).sum(1).tolist()
    total, tokens = float(sum(sequence_nll)), int(sum(sequence_tokens))
    if not tokens:
        raise ValueError("no predicted tokens: every label is ignored")
    return {"nll": total, "tokens": tokens, "perplexity": math.exp(total / tokens),
            "sequence_nll": sequence_nll, "sequence_tokens": sequence_tokens}
