"""Tiny fused models of several backbone families, built from configs (no downloads)."""
import numpy as np
import torch
from PIL import Image
from transformers import AutoModelForCausalLM, CLIPVisionConfig, LlamaConfig

from mbmlab.data.tasks import Example
from mbmlab.models import MbmConfig, MbmForConditionalGeneration, MbmProcessor, audio, text, vision
from mbmlab.models.modeling_mbm import build_audio_tower, build_vision_tower

IMAGE_SIZE = 32
SECONDS = 1


def text_config(tokenizer, kind: str):
    if kind == "gpt2":
        return text.gpt2_config(tokenizer, dim=32, layers=2, heads=2)
    if kind == "llama":
        return LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                           pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    raise ValueError(kind)


def vision_config(kind: str):
    if kind == "resnet":
        return vision.resnet_config(8, 1)  # 32×32 → a 2×2 grid
    if kind == "vit":
        return vision.vit_config(IMAGE_SIZE, 8, 32, 1, 2)
    if kind == "clip":
        return CLIPVisionConfig(image_size=IMAGE_SIZE, patch_size=8, hidden_size=32, intermediate_size=64,
                                num_hidden_layers=1, num_attention_heads=2)
    raise ValueError(kind)


def open_gates(model, value: float = 1.0):
    """Cross-attention gates start at zero (the fused model is then exactly its LM); tests that
    check how media flow through the blocks open them, as training would."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("attn_gate", "ff_gate")):
                parameter.fill_(value)
    return model


def build(tokenizer, lm: str = "gpt2", tower: str = "vit", with_audio: bool = True, seed: int = 0, **extra):
    """(model in eval mode, processor) with fresh random weights; cross-attention gates opened."""
    torch.manual_seed(seed)
    config = MbmConfig(text_config=text_config(tokenizer, lm), vision_config=vision_config(tower),
                       audio_config=audio.whisper_config(SECONDS, 32, 1, 2) if with_audio else None,
                       image_size=IMAGE_SIZE, image_token_id=text.token_id(tokenizer, text.IMAGE),
                       audio_token_id=text.token_id(tokenizer, text.AUDIO), **extra)
    model = open_gates(MbmForConditionalGeneration(config).eval())
    processor = MbmProcessor(vision.image_processor(IMAGE_SIZE), audio.feature_extractor(SECONDS), tokenizer,
                             config.image_seq_length, config.audio_seq_length or 0)
    return model, processor


def parts(tokenizer, lm: str = "gpt2", tower: str = "vit", seed: int = 0):
    """Separately trained-looking parts: an LM, an image tower, an audio encoder."""
    torch.manual_seed(seed)
    language_model = AutoModelForCausalLM.from_config(text_config(tokenizer, lm))
    return language_model, build_vision_tower(vision_config(tower)), build_audio_tower(
        audio.whisper_config(SECONDS, 32, 1, 2))


def clips(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 0.1, 16000 * SECONDS // (i + 1)).astype(np.float32) for i in range(n)]


# every backbone family the README names (two LM families, ResNet, ViT, CLIP's vision tower,
# Whisper), both image connectors, the resampler and all three fusion strategies
COMBOS = [
    ("gpt2", "resnet", dict(image_connector="pooled")),
    ("gpt2", "vit", dict(image_connector="patches")),
    ("llama", "clip", dict(image_connector="pooled")),
    ("llama", "resnet", dict(image_connector="patches")),
    ("gpt2", "vit", dict(image_connector="patches", image_projector="resampler", audio_projector="resampler",
                         resampler_queries=3)),
    ("gpt2", "vit", dict(fusion="cross_attention", image_connector="patches")),
    ("llama", "resnet", dict(fusion="cross_attention", image_connector="pooled", image_projector="resampler",
                             cross_attention_layers=[1])),
    ("gpt2", "resnet", dict(image_connector="attend", attend_dim=16)),
    ("llama", "vit", dict(fusion="cross_attention", image_connector="attend", attend_dim=16, image_projector="resampler",
                          resampler_queries=3)),
    ("gpt2", "vit", dict(fusion="early", early_patch_size=8, early_audio_frames=10)),
    ("llama", "resnet", dict(fusion="early", early_patch_size=16, early_audio_frames=25)),
]


IDS = [f"{lm}-{tower}-" + "-".join(str(v) for v in extra.values()) for lm, tower, extra in COMBOS]


def pictures(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)) for _ in range(n)]


def inputs(processor, n=2):
    prompts = [processor.prompt("spoken_vqa"), processor.prompt("vqa", "what color is the shape?")][:n]
    return processor(text=prompts, images=pictures(n), audio=clips(1))


EXAMPLES = [Example("vqa", 0, None, "what color is the shape?", ""), Example("caption", 1, None, "", ""),
            Example("asr", None, 0, "", ""), Example("spoken_vqa", 2, 1, "", ""),
            Example("vqa", 2, None, "is there a red shape?", "")]
