"""``MbmConfig``: a language model and up to two input modalities, joined by connectors.

Each tower is any transformers model named by its own config (resolved through ``AutoConfig``):
the text side any causal LM (GPT-2, Llama, Qwen2, …), the image side any image backbone (ViT,
CLIP's vision tower, ResNet, …), the audio side a Whisper encoder. How many tokens an image or a
clip becomes is worked out once from the towers' configs (a shape-only forward pass on the meta
device) and stored, so the processor and the model agree on the placeholder count.

``fusion`` names one of the strategies of ``mbmlab.models.fusion`` (prefix, cross_attention,
early). Under ``early`` there are no towers: ``vision_config`` and ``audio_config`` then only
state the inputs (image size and channels; mel bins and frames per clip) that the processor makes.
"""
from __future__ import annotations

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from ..names import FUSIONS, IMAGE_CONNECTORS, PROJECTORS


class MbmConfig(PreTrainedConfig):
    model_type = "mbm"
    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="gpt2"),
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet", optional=True),
        "audio_config": SubConfigSpec(config_class=AutoConfig, model_type="whisper", optional=True),
    }

    text_config: dict | PreTrainedConfig | None = None
    vision_config: dict | PreTrainedConfig | None = None
    audio_config: dict | PreTrainedConfig | None = None
    fusion: str = "prefix"
    image_size: int = 64  # the side the image processor resizes to
    image_connector: str = "pooled"  # pooled: the pooled image vector → prefix_length tokens; patches: the grid
    image_prefix_length: int = 4
    attend_dim: int = 128  # attend connector: width of what each head reads (before the projector)
    attend_mix: int = 0  # attend connector: hidden width of a layer reading all heads together (0: none)
    image_projector: str = "mlp2x_gelu"
    image_pixel_shuffle: int = 1
    audio_projector: str = "mlp2x_gelu"
    audio_frame_pool: int = 1
    image_token_id: int | None = None
    audio_token_id: int | None = None
    resampler_queries: int = 8  # tokens a resampler projector emits per image or clip
    cross_attention_layers: list[int] | None = None  # decoder layers with a gated block before them; None: all
    early_patch_size: int = 16  # early fusion: pixels per patch side
    early_audio_frames: int = 16  # early fusion: log-mel frames per token
    image_seq_length: int | None = None  # placeholder positions per image; the model works it out when not given
    audio_seq_length: int | None = None
    tie_word_embeddings: bool = True
    ctc_characters: str = ""  # the audio tower's CTC head spells these (blank first); empty: no head
    ctc_weight: float = 0.0  # the CTC loss's weight beside the decoder's when training (joint CTC–attention)
    spec_augment: bool = False  # mask the log-mel features of training batches (SpecAugment)
    translate_languages: list[str] | None = None  # what the translate tasks were trained to write (mbmlab ask --to)
    answer_languages: list[str] | None = None  # the languages translated_vqa was trained to answer in (ask --lang)
    vtlp_warp: float = 0.0  # with spec_augment: vocal tract length perturbation of training batches (ctc.vocal_tract_perturb)

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; allowed values: {', '.join(FUSIONS)}")
        if self.image_connector not in IMAGE_CONNECTORS:
            raise ValueError(f"unknown image connector {self.image_connector!r}; allowed values: "
                             f"{', '.join(IMAGE_CONNECTORS)}")
        for projector in (self.image_projector, self.audio_projector):
            if projector not in PROJECTORS:
                raise ValueError(f"unknown projector {projector!r}; allowed values: {', '.join(PROJECTORS)}")
        for name in ("bos_token_id", "eos_token_id", "pad_token_id", "vocab_size"):
            setattr(self, name, getattr(self.text_config, name, None))
        self.tie_word_embeddings = bool(getattr(self.text_config, "tie_word_embeddings", True))
        if self.vision_config is not None:
            if self.image_token_id is None:
                raise ValueError("a config with a vision tower needs image_token_id (the <image> token's id)")
        if self.audio_config is not None:
            if self.audio_token_id is None:
                raise ValueError("a config with an audio tower needs audio_token_id (the <audio> token's id)")
        if self.fusion == "cross_attention" and self.cross_attention_layers is not None:
            count = self.text_config.num_hidden_layers
            bad = [i for i in self.cross_attention_layers if not 0 <= i < count]
            if bad or not self.cross_attention_layers:
                raise ValueError(f"cross_attention_layers {self.cross_attention_layers} must name decoder layers "
                                 f"0..{count - 1}")

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m, c in (("image", self.vision_config), ("audio", self.audio_config)) if c is not None)


__all__ = ["MbmConfig"]
