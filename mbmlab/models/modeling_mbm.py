"""``MbmModel`` and ``MbmForConditionalGeneration``: towers → connectors → a fusion strategy → a causal LM.

An image becomes either ``k`` tokens mapped from its pooled vector by one MLP
(``image_connector="pooled"``, ClipCap: Mokady et al. 2021) or its grid of patch states,
pixel-shuffled and projected token by token (``"patches"``, LLaVA/Idefics3), or a fixed number
of tokens read by a Perceiver resampler (``image_projector="resampler"``, Flamingo); a clip
becomes its encoder frames, pooled in time and projected (or resampled). How those tokens reach
the decoder is ``config.fusion``, one of the strategies in ``fusion.py`` (prefix, gated
cross-attention, early fusion without towers). The towers are built from their configs through
the Auto classes, so any causal LM and any image backbone transformers has can take their place.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from ..names import PARTS, SEQUENCE_PROJECTORS  # noqa: F401  (PARTS: what staged training freezes and
# unfreezes by name; ``fusion`` is the strategy's own layers, absent where the strategy has none)
from . import ctc
from .configuration_mbm import MbmConfig
from .connectors import (AttendConnector, build_projector, frame_pool, grid_states, patch_states, pixel_shuffle,
                         pooled_image, pooled_length, prompt_tokens)
from .fusion import FUSIONS, FrameEmbedding, Media, PatchEmbedding
from .processing_mbm import IGNORE_INDEX


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
    pass of the vision tower on the meta device (no memory, no compute). Early fusion: the patch
    count and a patch's C·p·p values."""
    channels = getattr(config.vision_config, "num_channels", 3)
    if not FUSIONS[config.fusion].encoders:
        patch = config.early_patch_size
        if config.image_size % patch:
            raise ValueError(f"early_patch_size={patch} must divide image_size={config.image_size}")
        return (config.image_size // patch) ** 2, channels * patch * patch
    resampled = config.image_projector in SEQUENCE_PROJECTORS
    if config.image_connector == "attend":  # one token per head, whatever the tower's shape
        return (config.resampler_queries if resampled else config.image_prefix_length), config.attend_dim
    with torch.device("meta"):
        tower = build_vision_tower(config.vision_config)
        outputs = tower(pixel_values=torch.empty(1, channels, config.image_size, config.image_size))
        if config.image_connector == "pooled":
            tokens = config.resampler_queries if resampled else config.image_prefix_length
            return tokens, pooled_image(outputs).shape[-1]
        shuffled = pixel_shuffle(patch_states(outputs.last_hidden_state), config.image_pixel_shuffle)
    return (config.resampler_queries if resampled else shuffled.shape[1]), shuffled.shape[2]


def image_grid_channels(config: MbmConfig) -> int:
    """Channels of the vision tower's spatial states (what the attend connector reads)."""
    channels = getattr(config.vision_config, "num_channels", 3)
    with torch.device("meta"):
        outputs = build_vision_tower(config.vision_config)(
            pixel_values=torch.empty(1, channels, config.image_size, config.image_size))
        return grid_states(outputs.last_hidden_state).shape[1]


class AttendProjector(nn.Module):
    """The attend connector (the image read for the prompt) and the projector after it, head by
    head. ``mix`` > 0 adds a layer that reads all heads together (Linear → GELU, ``mix`` wide,
    then a linear map to every head's token, added to the projector's): a relation between what
    two heads read ("is the circle left of the star?" compares two positions) is computed there
    rather than left to the GPT. Its first layer is stage 0's classifier's hidden layer
    (``mbmlab.training.reader``), so what stage 0 learned to answer reaches the GPT; its output
    layer starts at zero (the tokens start as the head-by-head projection's)."""

    def __init__(self, attend: AttendConnector, projector: nn.Module, mix: int = 0, width: int = 0):
        super().__init__()
        self.attend, self.projector = attend, projector
        if mix:
            self.mix = nn.Sequential(nn.Linear(attend.heads * attend.dim, mix), nn.GELU(),
                                     nn.Linear(mix, attend.heads * width))
            self.mix[0].keeps_torch_init = True
            self.mix[2].starts_at_zero = True

    def forward(self, grid: torch.Tensor, embeds: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        heads = self.attend(grid, embeds, lengths)  # (N, heads, dim)
        tokens = self.projector(heads)  # (N, heads, D)
        if getattr(self, "mix", None) is not None:
            tokens = tokens + self.mix(heads.flatten(1)).view_as(tokens)
        return tokens


def audio_feature_length(config: MbmConfig) -> int:
    """Tokens a clip becomes before fusion: its encoder frames (half the log-mel frames), pooled
    in time, or the resampler's queries; early fusion: the log-mel frames in groups."""
    if not FUSIONS[config.fusion].encoders:
        return pooled_length(2 * config.audio_config.max_source_positions, config.early_audio_frames)
    if config.audio_projector in SEQUENCE_PROJECTORS:
        return config.resampler_queries
    return pooled_length(config.audio_config.max_source_positions, config.audio_frame_pool)


def fill_placeholder_lengths(config: MbmConfig) -> MbmConfig:
    """Set the config's decoder positions per image and per clip (the processor's placeholder
    counts) where they are not given, from the towers' output shapes and the fusion strategy."""
    strategy = FUSIONS[config.fusion]
    if config.vision_config is not None and config.image_seq_length is None:
        config.image_seq_length = strategy.placeholders(image_feature_shape(config)[0])
    if config.audio_config is not None and config.audio_seq_length is None:
        config.audio_seq_length = strategy.placeholders(audio_feature_length(config))
    return config


class MbmPreTrainedModel(PreTrainedModel):
    config_class = MbmConfig
    config: MbmConfig
    base_model_prefix = "model"
    input_modalities = ("image", "audio", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def _init_weights(self, module):
        """transformers' generic initialisation (every linear and convolution N(0, 0.02)), except
        the attend connector, which keeps PyTorch's own (``reset_parameters``): at 0.02 its queries
        and keys start so small that every head reads the uniform mean of the grid and the
        gradient that would sharpen them is as small — on a scenes run it never left chance."""
        if getattr(module, "keeps_torch_init", False):  # marked by the attend connector
            module.reset_parameters()
            return
        if getattr(module, "starts_at_zero", False):  # the attend connector's mixing output
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
            return
        super()._init_weights(module)


class MbmModel(MbmPreTrainedModel):
    """The towers, the connectors and the LM without its head; returns the LM's hidden states."""

    def __init__(self, config: MbmConfig):
        super().__init__(fill_placeholder_lengths(config))
        width = config.text_config.hidden_size
        strategy = FUSIONS[config.fusion]
        if config.vision_config is not None:
            tokens, feature_dim = image_feature_shape(config)
            if strategy.encoders:
                self.vision_tower = build_vision_tower(config.vision_config)
                # pooled (ClipCap): one vector → all prefix tokens at once; patches (LLaVA): token
                # by token; a resampler emits its queries whatever it reads
                pooled = config.image_connector == "pooled"
                at_once = pooled and config.image_projector not in SEQUENCE_PROJECTORS
                self.image_projector = build_projector(config.image_projector, feature_dim,
                                                       tokens * width if at_once else width,
                                                       normalise=config.image_connector != "patches",
                                                       queries=config.resampler_queries)
                if config.image_connector == "attend":  # the image read for each prompt
                    attend = AttendConnector(image_grid_channels(config), config.text_config.vocab_size,
                                             config.attend_dim, config.image_prefix_length)
                    self.image_projector = AttendProjector(attend, self.image_projector, config.attend_mix, width)
            else:
                self.image_projector = PatchEmbedding(getattr(config.vision_config, "num_channels", 3),
                                                      config.early_patch_size, width)
        if config.audio_config is not None:
            if strategy.encoders:
                self.audio_tower = build_audio_tower(config.audio_config)
                self.audio_projector = build_projector(config.audio_projector, config.audio_config.d_model, width,
                                                       queries=config.resampler_queries)
                if config.ctc_characters:  # spells the clip from the tower's frames (joint CTC–attention)
                    self.audio_ctc_head = ctc.CtcHead(config.audio_config.d_model, config.ctc_characters)
            else:
                self.audio_projector = FrameEmbedding(config.audio_config.num_mel_bins, config.early_audio_frames,
                                                      width)
        self.language_model = AutoModel.from_config(config.text_config)
        self.fusion = strategy(config, self.language_model)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_image_features(self, pixel_values: torch.Tensor, image_index: torch.Tensor | None = None,
                           prompts: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """(N, tokens, D): what an image becomes before fusion. The attend connector reads each image
        for a prompt: ``prompts`` holds the embedded prompt of each input row that shows an image
        (``prompt_tokens``), ``image_index`` the image each of those rows shows; it then returns
        one entry per such row, not per image."""
        if getattr(self, "vision_tower", None) is None:  # early fusion: patches, embedded
            return self.image_projector(pixel_values)
        if self.config.image_connector == "attend":
            if prompts is None:
                raise ValueError("the attend connector reads the image for a prompt: pass input_ids with the pixels")
            return self.image_projector(self.image_grid(pixel_values, image_index), *prompts)  # (N, heads, D)
        outputs = self.vision_tower(pixel_values=pixel_values)
        if self.config.image_connector == "pooled":
            prefix = self.image_projector(pooled_image(outputs))  # (N, k·D), or (N, Q, D) resampled
            if prefix.dim() == 2:
                prefix = prefix.view(len(prefix), self.config.image_prefix_length, -1)  # (N, k, D)
            return prefix
        states = patch_states(outputs.last_hidden_state)  # (N, P, Dv)
        return self.image_projector(pixel_shuffle(states, self.config.image_pixel_shuffle))  # (N, P/f², D)

    def image_grid(self, pixel_values: torch.Tensor, image_index: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C, h, w): the tower's spatial states, one per input row when ``image_index`` maps
        rows to images (what the attend connector reads; 03's stage 0 reads it the same way)."""
        grid = grid_states(self.vision_tower(pixel_values=pixel_values).last_hidden_state)
        return grid if image_index is None else torch.index_select(grid, 0, image_index)  # deterministic backward

    def get_audio_frames(self, input_features: torch.Tensor) -> torch.Tensor:
        """(N, T/2, Da): the audio tower's frames (what its CTC head reads)."""
        return self.audio_tower(input_features=input_features).last_hidden_state

    def get_audio_features(self, input_features: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        """(N, tokens, D): what a clip becomes before fusion (``frames``: the tower's, when already computed)."""
        if getattr(self, "audio_tower", None) is None:  # early fusion: log-mel frames, embedded
            return self.audio_projector(input_features)
        if frames is None:
            frames = self.get_audio_frames(input_features)  # (N, T/2, Da)
        return self.audio_projector(frame_pool(frames, self.config.audio_frame_pool))  # (N, T/2f, D)

    def image_prompts(self, input_ids: torch.Tensor, prompt_mask: torch.Tensor | None):
        """What the attend connector conditions on: the prompt tokens of each row that holds an
        image (``prompt_mask``: the positions that are prompt, not target or padding; None: every
        position), placeholders left out."""
        keep = torch.ones_like(input_ids, dtype=torch.bool) if prompt_mask is None else prompt_mask.bool()
        for token in (self.config.image_token_id, self.config.audio_token_id):
            if token is not None:
                keep = keep & (input_ids != token)
        shown = (input_ids == self.config.image_token_id).any(1)
        return prompt_tokens(input_ids[shown], keep[shown], self.image_projector.attend.embed)

    def media(self, pixel_values=None, input_features=None, image_index=None, audio_index=None,
              dtype=None, audio_frames=None, prompts=None) -> list[Media]:
        """The batch's images and clips, encoded. ``image_index[k]`` names the row of
        ``pixel_values`` that the k-th input row holding ``<image>`` shows (so many questions about
        one image encode it once); by default the rows go to those input rows in order. Same for audio.
        ``prompts``: the attend connector's (``image_prompts``)."""
        out = []
        if pixel_values is not None and prompts is not None:  # one entry per row already
            out.append(Media("image", self.get_image_features(pixel_values.to(dtype), image_index, prompts), None,
                             self.config.image_token_id))
        elif pixel_values is not None:
            out.append(Media("image", self.get_image_features(pixel_values.to(dtype)), image_index,
                             self.config.image_token_id))
        if input_features is not None:
            out.append(Media("audio", self.get_audio_features(input_features.to(dtype), audio_frames), audio_index,
                             self.config.audio_token_id))
        return out

    def forward(self, input_ids=None, pixel_values=None, input_features=None, attention_mask=None,
                position_ids=None, cache=None, inputs_embeds=None, image_index=None, audio_index=None,
                use_cache=None, audio_frames=None, prompt_mask=None, **kwargs) -> BaseModelOutputWithPast:
        """``prompt_mask`` (B, T): the positions that are prompt (the attend connector reads them);
        None: those of ``attention_mask``."""
        media = []
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)  # (B, T, D)
            prompts = None
            if pixel_values is not None and self.config.image_connector == "attend":
                prompts = self.image_prompts(input_ids, attention_mask if prompt_mask is None else prompt_mask)
            media = self.media(pixel_values, input_features, image_index, audio_index, inputs_embeds.dtype,
                               audio_frames, prompts)
        elif pixel_values is not None or input_features is not None:
            raise ValueError("pass input_ids (not inputs_embeds) with pixel_values or input_features: the "
                             "placeholder and marker tokens say where the media go")
        return self.fusion(self.language_model, inputs_embeds, input_ids, media, cache=cache,
                           attention_mask=attention_mask, position_ids=position_ids, use_cache=use_cache, **kwargs)


class MbmForConditionalGeneration(MbmPreTrainedModel, GenerationMixin):
    """``MbmModel`` plus the LM head: trained, saved, loaded and generated like any transformers LM."""

    def __init__(self, config: MbmConfig):
        super().__init__(fill_placeholder_lengths(config))
        self.model = MbmModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        # The head shares the LM's input embeddings, whatever that LM calls them (wte, embed_tokens…)
        embeddings = self.model.language_model.get_input_embeddings()
        name = next(n for n, m in self.model.language_model.named_modules() if m is embeddings)
        self._tied_weights_keys = {"lm_head.weight": f"model.language_model.{name}.weight"}
        self.post_init()

    @classmethod
    def from_parts(cls, config: MbmConfig, language_model=None, vision_tower=None,
                   audio_tower=None, ctc_head=None) -> "MbmForConditionalGeneration":
        """A new fused model that starts from trained parts (weights copied in): a causal LM
        (``AutoModelForCausalLM``), an image backbone, an audio encoder and its CTC head.
        Connectors start fresh."""
        model = cls(config)
        if ctc_head is not None:
            if getattr(model.model, "audio_ctc_head", None) is None or ctc_head.characters != config.ctc_characters:
                raise ValueError("the CTC head needs a config with an audio tower and the head's ctc_characters")
            model.model.audio_ctc_head.load_state_dict(ctc_head.state_dict())
        for name, tower in (("vision_tower", vision_tower), ("audio_tower", audio_tower)):
            if tower is not None and model.part(name) is None:
                raise ValueError(f"fusion={config.fusion!r} has no {name} to load (early fusion embeds raw "
                                 f"inputs); pass {name}=None")
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
        if name == "audio_tower" and getattr(self.model, "audio_ctc_head", None) is not None:
            return nn.ModuleList([self.model.audio_tower, self.model.audio_ctc_head])
        part = getattr(self.model, name, None)
        return part if part is not None and any(True for _ in part.parameters()) else None

    def forward(self, input_ids=None, pixel_values=None, input_features=None, attention_mask=None,
                position_ids=None, cache=None, inputs_embeds=None, labels=None, image_index=None,
                audio_index=None, use_cache=None, logits_to_keep: int = 0, frame_mask=None, ctc_targets=None,
                ctc_target_lengths=None, **kwargs) -> CausalLMOutputWithPast:
        """Training batches may carry ``frame_mask`` (which log-mel frames hold each clip) and the
        clips' CTC targets: in training mode the features are then SpecAugment-masked
        (``config.spec_augment``) and ``config.ctc_weight`` × the CTC loss joins the decoder's."""
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)  # the Trainer's, for the loss only
        audio_frames = ctc_loss = None
        if input_features is not None and self.training and self.config.spec_augment:
            input_features, frame_mask = ctc.augment(input_features, frame_mask, warp=self.config.vtlp_warp)
        head = getattr(self.model, "audio_ctc_head", None)
        if input_features is not None and ctc_targets is not None and head is not None and self.config.ctc_weight:
            if frame_mask is None:
                raise ValueError("CTC targets need the batch's frame_mask (the frames that hold each clip)")
            audio_frames = self.model.get_audio_frames(input_features)
            ctc_loss = ctc.ctc_loss(head(audio_frames), ctc.frame_lengths(frame_mask, audio_frames.shape[1]),
                                    ctc_targets, ctc_target_lengths)
        prompt_mask = None  # in training rows the prompt is what carries no loss; the attend connector reads it
        if labels is not None and input_ids is not None:
            prompt_mask = labels == IGNORE_INDEX
            if attention_mask is not None:
                prompt_mask = prompt_mask & attention_mask.bool()
        outputs = self.model(input_ids=input_ids, pixel_values=pixel_values, input_features=input_features,
                             attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                             inputs_embeds=inputs_embeds, image_index=image_index, audio_index=audio_index,
                             use_cache=use_cache, audio_frames=audio_frames, prompt_mask=prompt_mask, **kwargs)
        hidden = outputs.last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size,
                                      num_items_in_batch=num_items_in_batch)
            if ctc_loss is not None:
                loss = loss + self.config.ctc_weight * ctc_loss
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=getattr(outputs, "cache", None),
                                      hidden_states=outputs.hidden_states, attentions=outputs.attentions)


__all__ = ["MbmPreTrainedModel", "MbmModel", "MbmForConditionalGeneration", "PARTS", "image_feature_shape", "fill_placeholder_lengths"]
