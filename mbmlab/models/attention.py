"""The seed article's formula, Attention(Q, K, V) = softmax(QKᵀ / √d_k) V (Vaswani et al., 2017,
"Attention Is All You Need", eq. 1), written out, and checked against PyTorch's fused kernel and
against GPT-2's own attention on the same weights."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """softmax(QKᵀ/√d_k)V over the last two dimensions; ``causal`` hides later positions (GPT)."""
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)
    if causal:
        later = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(later, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def gpt2_block_attention(attn_module, hidden: torch.Tensor) -> torch.Tensor:
    """GPT-2's attention sub-layer recomputed with :func:`attention`, on the module's own weights:
    the fused QKV projection, split into heads, the formula per head, heads merged, output projection."""
    batch, length, dim = hidden.shape
    heads = attn_module.num_heads
    q, k, v = attn_module.c_attn(hidden).split(dim, dim=2)
    split = lambda t: t.view(batch, length, heads, dim // heads).transpose(1, 2)  # noqa: E731
    out = attention(split(q), split(k), split(v), causal=True)
    return attn_module.c_proj(out.transpose(1, 2).reshape(batch, length, dim))


@torch.no_grad()
def check_against_references(model, input_ids: torch.Tensor) -> dict[str, float]:
    """Max |difference| of the written-out formula against (1) ``scaled_dot_product_attention`` on
    the same Q, K, V and (2) GPT-2's first attention layer's output on the same hidden states."""
    model = model.eval()
    transformer = model.transformer if hasattr(model, "transformer") else model
    positions = torch.arange(input_ids.shape[1]).unsqueeze(0)
    hidden = transformer.wte(input_ids) + transformer.wpe(positions)
    block = transformer.h[0]
    normed = block.ln_1(hidden)
    attn = block.attn
    dim, heads = normed.shape[-1], attn.num_heads
    q, k, v = (t.view(*normed.shape[:2], heads, dim // heads).transpose(1, 2)
               for t in attn.c_attn(normed).split(dim, dim=2))
    ours = attention(q, k, v, causal=True)
    sdpa = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    gpt2_out = attn(normed)[0]
    return {
        "vs scaled_dot_product_attention": (ours - sdpa).abs().max().item(),
        "vs GPT-2 attention layer": (gpt2_block_attention(attn, normed) - gpt2_out).abs().max().item(),
    }
