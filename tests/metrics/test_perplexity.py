"""Perplexity = exp(total NLL / total predicted tokens), against a direct token-by-token loop."""
import math

import torch

from mbmlab.metrics.perplexity import perplexity
from mbmlab.models import text
from mbmlab.training.trainer import LMCollator, TextLines

LINES = ["caption: a red circle", "question: what color is the shape? answer: blue", "no",
         "transcribe: is there a green triangle in the image?", "yes"]


def test_perplexity_is_exp_of_total_nll_over_total_tokens(tokenizer):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(text.gpt2_config(tokenizer, dim=32, layers=2, heads=2)).eval()
    data = TextLines(LINES, tokenizer)
    ours = perplexity(model, data, LMCollator(tokenizer.pad_token_id), batch_size=2)
    # the reference: every line alone, every next token scored from the tokens before it
    nll, count = 0.0, 0
    with torch.no_grad():
        for ids in data.ids:
            for t in range(1, len(ids)):
                logits = model(input_ids=torch.tensor([ids[:t]])).logits[0, -1]
                nll -= torch.log_softmax(logits.double(), -1)[ids[t]].item()
                count += 1
    assert ours["tokens"] == count == sum(len(ids) - 1 for ids in data.ids)
    assert math.isclose(ours["nll"], nll, rel_tol=1e-5)
    assert math.isclose(ours["perplexity"], math.exp(nll / count), rel_tol=1e-5)
    # the batch size must not matter; the mean of per-batch means would (batches of unequal length)
    assert math.isclose(perplexity(model, data, LMCollator(tokenizer.pad_token_id), batch_size=5)["perplexity"],
                        ours["perplexity"], rel_tol=1e-5)
