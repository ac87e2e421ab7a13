"""``MbmModel`` and ``MbmForConditionalGeneration``: towers → connectors → a causal LM.

``fusion="prefix"``: the image and the clip become soft tokens written into the decoder input
at ``<image>`` / ``<audio>`` placeholder positions. An image becomes either ``k`` tokens mapped
from its pooled vector by one MLP (``image_connector="pooled"``, ClipCap: Mokady et al. 2021)
or its grid of patch states, pixel-shuffled and projected token by token (``"patches"``,
LLaVA/Idefics3); a clip becomes its encoder frames, pooled in time and projected. The towers
are built from their configs through the Auto classes, so any causal LM and
any image backbone transformers has can take their place.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .configuration_mbm import MbmConfig
from .connectors import build_projector, frame_pool, patch_states, pixel_shuffle, pooled_image

PARTS = ("vision_tower", "audio_tower", "image_projector", "audio_projector", "language_model")


def build_vision_tower(vision_config) -> nn.Module:
    # ViT's pooler is a trained head we never use: patch states only
    extra = {"add_pooling_layer": False} if vision_config.model_type == "vit" else {}
    return AutoModel.from_config(vision_config, **extra)


def build_audio_tower(audio_config) -> nn.Module:
    if audio_config.model_type == "whisper":  # the encoder half of Whisper; no decoder is needed
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        return WhisperEncoder._from_config(audio_config)
    return AutoModel.from_config(audio_config)


def image_feature_shape(config: MbmConfig) -> tuple[int, int]:
    """(tokens per image, width of what the projector reads), worked out by a shape-only forward
    pass of the vision tower on the meta device (no memory, no compute)."""
    channels = getattr(config.vision_config, "num_channels", 3)
    with torch.device("meta"):
        tower = build_vision_tower(config.vision_config)
        outputs = tower(pixel_values=torch.empty(1, channels, config.image_size, config.image_size))
        if config.image_connector == "pooled":
            return config.image_prefix_length, pooled_image(outputs).shape[-1]
        shuffled = pixel_shuffle(patch_states(outputs.last_hidden_state), config.image_pixel_shuffle)
    return shuffled.shape[1], shuffled.shape[2]


class MbmPreTrainedModel(PreTrainedModel):
    config_class = MbmConfig
    config: MbmConfig
    base_model_prefix = "model"
    input_modalities = ("image", "audio", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True


class MbmModel(MbmPreTrainedModel):
    """The towers, the connectors and the LM without its head; returns the LM's hidden states."""

    def __init__(self, config: MbmConfig):
        super().__init__(config)
        width = config.text_config.hidden_size
        if config.vision_config is not None:
            self.vision_tower = build_vision_tower(config.vision_config)
            tokens, feature_dim = image_feature_shape(config)
            # pooled (ClipCap): one vector → all prefix tokens at once; patches (LLaVA): token by token
            pooled = config.image_connector == "pooled"
            self.image_projector = build_projector(config.image_projector, feature_dim,
                                                   tokens * width if pooled else width, normalise=pooled)
        if config.audio_config is not None:
            self.audio_tower = build_audio_tower(config.audio_config)
            self.audio_projector = build_projector(config.audio_projector, config.audio_config.d_model, width)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        outputs = self.vision_tower(pixel_values=pixel_values)
        if self.config.image_connector == "pooled":
            prefix = self.image_projector(pooled_image(outputs))  # (N, k·D)
            return prefix.view(len(prefix), self.config.image_prefix_length, -1)  # (N, k, D)
        states = patch_states(outputs.last_hidden_state)  # (N, P, Dv)
        return self.image_projector(pixel_shuffle(states, self.config.image_pixel_shuffle))  # (N, P/f², D)

    def get_audio_features(self, input_features: torch.Tensor) -> torch.Tensor:
        frames = self.audio_tower(input_features=input_features).last_hidden_state  # (N, T/2, Da)
        return self.audio_projector(frame_pool(frames, self.config.audio_frame_pool))  # (N, T/2f, D)

    @staticmethod
    def _scatter(embeds, input_ids, features, token_id: int, index, what: str) -> torch.Tensor:
        """Write ``features[index]`` (one row per input row that has placeholders, in order) over
        the placeholder positions; refuse a count that does not add up."""
        mask = input_ids == token_id  # (B, T)
        if index is not None:
            features = features[index]  # (rows with placeholders, tokens, D)
        n_slots, n_features = int(mask.sum()), features.shape[0] * features.shape[1]
        if n_slots != n_features:
            raise ValueError(f"{n_slots} <{what}> placeholders in input_ids but {n_features} {what} features "
                             f"({features.shape[0]} {what}s × {features.shape[1]} tokens); build inputs with "
                             f"MbmProcessor, which places {features.shape[1]} per {what}")
        return embeds.masked_scatter(mask.unsqueeze(-1), features.to(embeds.dtype))

    def embed(self, input_ids, pixel_values=None, input_features=None, image_index=None, audio_index=None):
        """Token embeddings with image and audio features written over their placeholders.

        ``image_index[k]`` names the row of ``pixel_values`` that the k-th input row holding
        ``<image>`` placeholders shows (so many questions about one image encode it once); by
        default the rows of ``pixel_values`` go to those input rows in order. Same for audio.
        """
        embeds = self.get_input_embeddings()(input_ids)  # (B, T, D)
        if pixel_values is not None:
            features = self.get_image_features(pixel_values.to(embeds.dtype))
            embeds = self._scatter(embeds, input_ids, features, self.config.image_token_id, image_index, "image")
        if input_features is not None:
            features = self.get_audio_features(input_features.to(embeds.dtype))
            embeds = self._scatter(embeds, input_ids, features, self.config.audio_token_id, audio_index, "audio")
        return embeds

    def forward(self, input_ids=None, pixel_values=None, input_features=None, attention_mask=None,
                position_ids=None, cache=None, inputs_embeds=None, image_index=None, audio_index=None,
                use_cache=None, **kwargs) -> BaseModelOutputWithPast:
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, pixel_values, input_features, image_index, audio_index)
        return self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                   position_ids=position_ids, cache=cache, use_cache=use_cache, **kwargs)


class MbmForConditionalGeneration(MbmPreTrainedModel, GenerationMixin):
    """``MbmModel`` plus the LM head: trained, saved, loaded and generated like any transformers LM."""

    def __init__(self, config: MbmConfig):
        super().__init__(config)
        self.model = MbmModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        # The head shares the LM's input embeddings, whatever that LM calls them (wte, embed_tokens…)
        embeddings = self.model.language_model.get_input_embeddings()
        name = next(n for n, m in self.model.language_model.named_modules() if m is embeddings)
        self._tied_weights_keys = {"lm_head.weight": f"model.language_model.{name}.weight"}
        self.post_init()

    @classmethod
    def from_parts(cls, config: MbmConfig, language_model=None, vision_tower=None,
                   audio_tower=None) -> "MbmForConditionalGeneration":
        """A new fused model that starts from trained parts (weights copied in): a causal LM
        (``AutoModelForCausalLM``), an image backbone, an audio encoder. Connectors start fresh."""
        model = cls(config)
        if language_model is not None:
            model.model.language_model.load_state_dict(language_model.base_model.state_dict())
            with torch.no_grad():
                model.lm_head.weight.copy_(language_model.get_output_embeddings().weight)
        if vision_tower is not None:
            state = {k: v for k, v in vision_tower.state_dict().items()
                     if not (config.vision_config.model_type == "vit" and k.startswith("pooler."))}
            model.model.vision_tower.load_state_dict(state)
        if audio_tower is not None:
            model.model.audio_tower.load_state_dict(audio_tower.state_dict())
        return model

    frozen_parts: tuple[str, ...] = ()  # set by staged training; these stay in eval mode

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.frozen_parts:
            if (part := self.part(name)) is not None:
                part.eval()  # a frozen BatchNorm keeps its statistics, a frozen LM runs without dropout
        return self

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def part(self, name: str) -> nn.Module:
        """One of ``PARTS`` by name (the names staged training freezes and unfreezes)."""
        if name not in PARTS:
            raise ValueError(f"unknown part {name!r}; parts: {', '.join(PARTS)}")
        if name == "language_model":
            return nn.ModuleList([self.model.language_model, self.lm_head])
        return getattr(self.model, name, None)

    def forward(self, input_ids=None, pixel_values=None, input_features=None, attention_mask=None,
                position_ids=None, cache=None, inputs_embeds=None, labels=None, image_index=None,
                audio_index=None, use_cache=None, logits_to_keep: int = 0, **kwargs) -> CausalLMOutputWithPast:
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)  # the Trainer's, for the loss only
        outputs = self.model(input_ids=input_ids, pixel_values=pixel_values, input_features=input_features,
                             attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                             inputs_embeds=inputs_embeds, image_index=image_index, audio_index=audio_index,
                             use_cache=use_cache, **kwargs)
        hidden = outputs.last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size,
                                      num_items_in_batch=num_items_in_batch)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=getattr(outputs, "cache", None),
                                      hidden_states=outputs.hidden_states, attentions=outputs.attentions)


__all__ = ["MbmPreTrainedModel", "MbmModel", "MbmForConditionalGeneration", "PARTS", "image_feature_shape"]
