"""The fused multimodal GPT: a vision encoder, a connector and a GPT-2, as one transformers model.

``fusion="prefix"`` (LLaVA, ClipCap): the ViT's patch states are projected to the GPT's width
and written into the decoder input at ``<image>`` placeholder positions, so the GPT reads
the image as a prefix of "soft tokens". Placeholder positions carry no loss (label -100).
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import (AutoConfig, GenerationMixin, GPT2LMHeadModel, PreTrainedConfig, PreTrainedModel,
                          ViTModel)
from transformers.configuration_utils import SubConfigSpec
from transformers.modeling_outputs import CausalLMOutputWithCrossAttentions

FUSIONS = ("prefix",)

# Connector registry, named as in LLaVA's config strings.
PROJECTOR_BUILDERS = {
    "linear": lambda in_dim, out_dim: nn.Linear(in_dim, out_dim),
    "mlp2x_gelu": lambda in_dim, out_dim: nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(),
                                                        nn.Linear(out_dim, out_dim)),
}
PROJECTORS = tuple(PROJECTOR_BUILDERS)


def build_projector(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    if kind not in PROJECTOR_BUILDERS:
        raise ValueError(f"unknown projector {kind!r}; allowed values: {', '.join(PROJECTORS)}")
    return PROJECTOR_BUILDERS[kind](in_dim, out_dim)


def pixel_shuffle(patches: torch.Tensor, factor: int) -> torch.Tensor:
    """Space-to-depth on the patch grid (nanoVLM, Idefics3): each f×f block of patches becomes one
    token with f²× the width, so the GPT reads f² times fewer image tokens at no loss of detail."""
    if factor == 1:
        return patches
    n, p, d = patches.shape
    side = int(p ** 0.5)
    grid = patches.reshape(n, side // factor, factor, side // factor, factor, d)  # (N, h, f, w, f, Dv)
    grid = grid.permute(0, 1, 3, 2, 4, 5)  # (N, h, w, f, f, Dv)
    return grid.reshape(n, (side // factor) ** 2, factor * factor * d)  # (N, P/f², f²·Dv)


class MbmConfig(PreTrainedConfig):
    model_type = "mbmlab"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="vit"),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="gpt2"),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    fusion: str = "prefix"
    projector: str = "mlp2x_gelu"
    pixel_shuffle: int = 1
    image_token_id: int = 2
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; allowed values: {', '.join(FUSIONS)}")
        for name in ("bos_token_id", "eos_token_id", "pad_token_id", "vocab_size"):
            setattr(self, name, getattr(self.text_config, name))

        side = self.vision_config.image_size // self.vision_config.patch_size
        if self.pixel_shuffle < 1 or side % self.pixel_shuffle:
            raise ValueError(f"pixel_shuffle={self.pixel_shuffle} must divide the {side}×{side} patch grid")

    @property
    def num_image_tokens(self) -> int:
        """Image tokens per image: the patch grid after pixel shuffle ([CLS] is not passed on)."""
        side = self.vision_config.image_size // self.vision_config.patch_size // self.pixel_shuffle
        return side * side


class MbmPreTrainedModel(PreTrainedModel):
    config_class = MbmConfig
    base_model_prefix = "mbm"
    input_modalities = ("image", "text")
    _supports_sdpa = True


class MbmForConditionalGeneration(MbmPreTrainedModel, GenerationMixin):
    """ViT → projector → GPT-2, trained and generated like any transformers causal LM."""

    def __init__(self, config: MbmConfig):
        super().__init__(config)
        # ``_from_config`` (not the bare constructor) dispatches the attention implementation to
        # the sub-configs; without it GPT-2 falls back to an attention without its causal mask.
        self.vision = ViTModel._from_config(config.vision_config, add_pooling_layer=False)
        self.projector = build_projector(config.projector, config.vision_config.hidden_size * config.pixel_shuffle**2,
                                         config.text_config.n_embd)
        self.language_model = GPT2LMHeadModel._from_config(config.text_config)
        self.post_init()

    @classmethod
    def from_parts(cls, config: MbmConfig, language_model: GPT2LMHeadModel | None = None,
                   vision: ViTModel | None = None) -> "MbmForConditionalGeneration":
        """A new fused model that starts from a trained GPT-2 and/or ViT (weights copied in)."""
        model = cls._from_config(config)
        if language_model is not None:
            model.language_model.load_state_dict(language_model.state_dict())
        if vision is not None:  # the pooler (if the source ViT has one) is unused here: patch states only
            model.vision.load_state_dict({k: v for k, v in vision.state_dict().items() if not k.startswith("pooler.")})
        return model

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        patches = self.vision(pixel_values=pixel_values).last_hidden_state[:, 1:]  # (N, P, Dv), [CLS] dropped
        return self.projector(pixel_shuffle(patches, self.config.pixel_shuffle))  # (N, P/f², D)

    def embed(self, input_ids: torch.LongTensor, pixel_values: torch.Tensor | None = None,
              image_index: torch.LongTensor | None = None) -> torch.Tensor:
        """Token embeddings with image features written over the ``<image>`` placeholders.

        ``image_index[b]`` names the image (a row of ``pixel_values``) that row ``b`` shows, so
        a batch of many questions about few images encodes each image once. Default: row b
        shows image b.
        """
        embeds = self.get_input_embeddings()(input_ids)  # (B, T, D)
        if pixel_values is None:
            return embeds
        features = self.image_features(pixel_values.to(embeds.dtype))  # (N, P, D)
        if image_index is not None:
            features = features[image_index]  # (B, P, D)
        mask = input_ids == self.config.image_token_id  # (B, T)
        n_slots, n_features = int(mask.sum()), features.shape[0] * features.shape[1]
        if n_slots != n_features:
            raise ValueError(f"{n_slots} {self.config.image_token_id=} placeholders in input_ids but "
                             f"{n_features} image features ({features.shape[0]} images × {features.shape[1]} patches); "
                             f"each row needs exactly {self.config.num_image_tokens} placeholders")
        return embeds.masked_scatter(mask.unsqueeze(-1), features.to(embeds.dtype))

    def forward(self, input_ids: torch.LongTensor | None = None, pixel_values: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, position_ids: torch.LongTensor | None = None,
                cache=None, labels: torch.LongTensor | None = None, image_index: torch.LongTensor | None = None,
                inputs_embeds: torch.Tensor | None = None, use_cache: bool | None = None,
                **kwargs) -> CausalLMOutputWithCrossAttentions:
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, pixel_values, image_index)
        return self.language_model(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
            cache=cache, labels=labels, use_cache=use_cache, **kwargs,
        )


AutoConfig.register("mbmlab", MbmConfig)
