"""How the image and the clip reach the GPT: three strategies behind one registry, ``FUSIONS``.

- ``prefix`` (LLaVA: Liu et al. 2023; ClipCap: Mokady et al. 2021): the encoders' projected
  states are written over ``<image>`` / ``<audio>`` placeholder positions of the decoder input.
- ``cross_attention`` (Flamingo: Alayrac et al. 2022): the decoder input holds one marker token
  per image or clip; chosen decoder layers read the encoder states through gated
  cross-attention blocks whose gates start at zero, so training starts from the language
  model's own behaviour. The blocks' keys and values of the encoder states are computed once
  per forward pass, and once per generation when a KV cache is used (kept beside it).
- ``early`` (Fuyu: Bavishi et al. 2023): no separate encoder; raw pixel patches and groups of
  log-mel frames are embedded by one linear layer each, straight into placeholder positions.

Each strategy is a module with ``encoders`` (whether the model has towers), ``placeholders``
(positions an image or a clip takes in the decoder input, given the tokens its encoder emits)
and ``forward`` (join the encoded media and run the language model). The model calls only these.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import names


class Media(NamedTuple):
    """Encoded images or clips of a batch: ``features`` (N, L, D) in the GPT's width; ``index``
    maps the input rows that show one, in order, to rows of ``features`` (None: in order)."""

    what: str  # "image" or "audio"
    features: torch.Tensor
    index: torch.Tensor | None
    token_id: int


def rows(media: Media) -> torch.Tensor:
    """The features of each input row that holds the medium: ``features[index]``, through
    ``index_select``. Many questions share one image, so the index repeats, and the backward of
    plain indexing (``index_put_`` with accumulation) adds those rows' gradients with atomic float
    adds from several threads on a CPU, in an order that changes with the machine's load: the same
    seed then trains to other weights. ``index_select``'s backward (``index_add_``) adds in a fixed
    order."""
    return media.features if media.index is None else torch.index_select(media.features, 0, media.index)


def scatter(embeds: torch.Tensor, input_ids: torch.Tensor, media: Media) -> torch.Tensor:
    """Write ``media.features[media.index]`` over the placeholder positions; refuse a count that
    does not add up."""
    mask = input_ids == media.token_id  # (B, T)
    features = rows(media)
    n_slots, n_features = int(mask.sum()), features.shape[0] * features.shape[1]
    if n_slots != n_features:
        raise ValueError(f"{n_slots} <{media.what}> placeholders in input_ids but {n_features} {media.what} features "
                         f"({features.shape[0]} {media.what}s × {features.shape[1]} tokens); build inputs with "
                         f"MbmProcessor, which places {features.shape[1]} per {media.what}")
    return embeds.masked_scatter(mask.unsqueeze(-1), features.to(embeds.dtype))


class PrefixFusion(nn.Module):
    """Encoder states as soft tokens at placeholder positions; no parameters of its own."""

    name = "prefix"
    encoders = True

    def __init__(self, config, language_model: nn.Module):
        super().__init__()

    @staticmethod
    def placeholders(feature_tokens: int) -> int:
        return feature_tokens

    def forward(self, language_model, inputs_embeds, input_ids, media: list[Media], cache=None, **kwargs):
        for item in media:
            inputs_embeds = scatter(inputs_embeds, input_ids, item)
        return language_model(inputs_embeds=inputs_embeds, cache=cache, **kwargs)


class EarlyFusion(PrefixFusion):
    """Fuyu-style: the same placement as ``prefix``, but what is placed is a linear embedding of
    raw patches and mel frames (``PatchEmbedding``, ``FrameEmbedding``); the model has no towers."""

    name = "early"
    encoders = False


class PatchEmbedding(nn.Module):
    """Fuyu's image path: cut the image into p×p patches, flatten each (C·p·p values, row by row)
    and project it linearly to the GPT's width. (N, C, H, W) → (N, (H/p)·(W/p), D)."""

    def __init__(self, channels: int, patch: int, width: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Linear(channels * patch * patch, width)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        patches = F.unfold(pixel_values, kernel_size=self.patch, stride=self.patch)  # (N, C·p·p, P)
        return self.proj(patches.transpose(1, 2))


class FrameEmbedding(nn.Module):
    """The audio counterpart: every ``frames`` consecutive log-mel frames (the last group zero-
    padded) become one token by one linear layer. (N, M, T) → (N, ⌈T/frames⌉, D)."""

    def __init__(self, mel_bins: int, frames: int, width: int):
        super().__init__()
        self.frames = frames
        self.proj = nn.Linear(mel_bins * frames, width)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        n, m, t = features.shape
        features = F.pad(features, (0, (-t) % self.frames))
        groups = features.view(n, m, -1, self.frames).permute(0, 2, 1, 3)  # (N, T/k, M, k)
        return self.proj(groups.reshape(n, groups.shape[1], m * self.frames))


class GatedCrossAttentionBlock(nn.Module):
    """Flamingo's GATED XATTN-DENSE block (Alayrac et al. 2022, §2.2 and Fig. 4), inserted before
    a decoder layer:  x ← x + tanh(α)·attn(LN(x), media);  x ← x + tanh(β)·ffw(LN(x)),
    with α = β = 0 at initialisation. Rows without any media are left unchanged."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"cross-attention: {heads} heads do not divide the width {dim}")
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(dim, dim, bias=False) for _ in range(4))
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.ff_norm = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.ff_gate = nn.Parameter(torch.zeros(1))

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) → (B, H, L, D/H)
        b, length, d = x.shape
        return x.view(b, length, self.heads, d // self.heads).transpose(1, 2)

    def keys_values(self, media: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._split(self.k_proj(media)), self._split(self.v_proj(media))

    def forward(self, x, keys, values, mask, has_media):
        b, t, d = x.shape
        q = self._split(self.q_proj(self.norm(x)))
        attended = F.scaled_dot_product_attention(q, keys.to(q.dtype), values.to(q.dtype),
                                                  attn_mask=mask[:, None, None, :])
        attended = self.o_proj(attended.transpose(1, 2).reshape(b, t, d))
        keep = has_media.to(x.dtype)[:, None, None]
        x = x + torch.tanh(self.attn_gate) * attended * keep
        return x + torch.tanh(self.ff_gate) * self.ff(self.ff_norm(x)) * keep


class _CrossAttentionHook:
    """A forward pre-hook on one decoder layer that runs its gated block on the layer's input
    hidden states while ``fusion`` has media for the current forward pass. A plain object (not a
    closure) so that ``copy.deepcopy`` of the model rebinds it to the copy's blocks."""

    def __init__(self, fusion: "CrossAttentionFusion", key: str):
        self.fusion, self.key = fusion, key

    def __call__(self, module, args, kwargs):
        context = self.fusion.active
        if context is None:
            return None
        kv, mask, has_media = context
        block = self.fusion.blocks[self.key]
        if args:
            return (block(args[0], *kv[self.key], mask, has_media), *args[1:]), kwargs
        kwargs["hidden_states"] = block(kwargs["hidden_states"], *kv[self.key], mask, has_media)
        return args, kwargs


def decoder_layers(language_model: nn.Module, count: int) -> nn.ModuleList:
    """The decoder's list of layers, whatever the family calls it (GPT-2 ``h``, Llama ``layers``)."""
    for module in language_model.children():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ValueError(f"cannot find the {count} decoder layers of {type(language_model).__name__} "
                     f"for cross-attention fusion")


class CrossAttentionFusion(nn.Module):
    """Gated cross-attention blocks before the decoder layers ``config.cross_attention_layers``
    (all when None); the decoder input keeps one ``<image>`` / ``<audio>`` marker per item."""

    name = "cross_attention"
    encoders = True
    CACHE_ATTRIBUTE = "mbm_cross_attention"  # where the media keys and values live during generation

    def __init__(self, config, language_model: nn.Module):
        super().__init__()
        text = config.text_config
        count = text.num_hidden_layers
        chosen = list(range(count)) if config.cross_attention_layers is None else list(config.cross_attention_layers)
        layers = decoder_layers(language_model, count)
        self.blocks = nn.ModuleDict({str(i): GatedCrossAttentionBlock(text.hidden_size, text.num_attention_heads)
                                     for i in chosen})
        self.active = None  # (keys and values per block, media mask, rows with media) during a forward pass
        for i in chosen:
            layers[i].register_forward_pre_hook(_CrossAttentionHook(self, str(i)), with_kwargs=True)

    @staticmethod
    def placeholders(feature_tokens: int) -> int:
        return 1  # one marker token per image or clip

    def context(self, input_ids: torch.Tensor, media: list[Media]):
        """Each row's media (its image's and its clip's states side by side), the mask of which
        media positions a row may read, and the keys and values of every block."""
        batch = input_ids.shape[0]
        states, masks = [], []
        for item in media:
            counts = (input_ids == item.token_id).sum(1)
            if bool((counts > 1).any()):
                raise ValueError(f"cross_attention fusion reads one <{item.what}> marker per row; a row has "
                                 f"{int(counts.max())} (build inputs with MbmProcessor)")
            has = counts == 1
            features = rows(item)
            if features.shape[0] != int(has.sum()):
                raise ValueError(f"{int(has.sum())} rows with an <{item.what}> marker but {features.shape[0]} "
                                 f"{item.what}s; build inputs with MbmProcessor")
            full = features.new_zeros(batch, *features.shape[1:])
            full[has] = features
            states.append(full)
            masks.append(has[:, None].expand(-1, features.shape[1]))
        media_states, mask = torch.cat(states, 1), torch.cat(masks, 1)
        has_media = mask.any(1)
        mask = mask | ~has_media[:, None]  # a row with nothing to read attends anywhere; its output is zeroed
        kv = {key: block.keys_values(media_states) for key, block in self.blocks.items()}
        return kv, mask, has_media

    def forward(self, language_model, inputs_embeds, input_ids, media: list[Media], cache=None, **kwargs):
        if media:
            context = self.context(input_ids, media)
            if cache is not None:  # later generation steps bring no media: they read these
                setattr(cache, self.CACHE_ATTRIBUTE, context)
        else:
            context = getattr(cache, self.CACHE_ATTRIBUTE, None) if cache is not None else None
        self.active = context
        try:
            return language_model(inputs_embeds=inputs_embeds, cache=cache, **kwargs)
        finally:
            self.active = None


FUSIONS = {cls.name: cls for cls in (PrefixFusion, CrossAttentionFusion, EarlyFusion)}
names.check_registry(FUSIONS, names.FUSIONS, "fusion strategy")

__all__ = ["FUSIONS", "Media", "PrefixFusion", "CrossAttentionFusion", "EarlyFusion", "PatchEmbedding",
           "FrameEmbedding", "GatedCrossAttentionBlock", "decoder_layers", "rows", "scatter"]
