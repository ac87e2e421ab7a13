"""The audio side: a Whisper-style encoder (transformers ``WhisperEncoder``) on log-mel features
from ``WhisperFeatureExtractor``, with the chunk length sized to the clips instead of Whisper's
30 s (our clips last a few seconds; 30 s of padding would be 90% wasted compute)."""
from __future__ import annotations

import math

import numpy as np
import torch
from transformers import WhisperConfig, WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder

FRAMES_PER_SECOND = 100  # WhisperFeatureExtractor: hop length 160 at 16 kHz
MEL_BINS = 80


def chunk_seconds(durations: list[float], cap: int = 30) -> int:
    """The chunk length that fits every clip: the longest duration, rounded up, at most ``cap``."""
    return int(min(cap, max(1, math.ceil(max(durations)))))


def feature_extractor(seconds: int) -> WhisperFeatureExtractor:
    return WhisperFeatureExtractor(feature_size=MEL_BINS, chunk_length=seconds)


def whisper_config(seconds: int, dim: int, layers: int, heads: int) -> WhisperConfig:
    """Encoder-only settings; the conv stem halves the frame rate, so positions = 50 per second."""
    return WhisperConfig(num_mel_bins=MEL_BINS, d_model=dim, encoder_layers=layers, encoder_attention_heads=heads,
                         encoder_ffn_dim=4 * dim, max_source_positions=seconds * FRAMES_PER_SECOND // 2,
                         decoder_layers=1, decoder_attention_heads=heads, decoder_ffn_dim=4 * dim,
                         vocab_size=8, max_target_positions=8,  # the (unused) decoder, kept minimal
                         pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=3)


def new_audio_encoder(seconds: int, dim: int, layers: int, heads: int, seed: int) -> WhisperEncoder:
    torch.manual_seed(seed)
    return WhisperEncoder._from_config(whisper_config(seconds, dim, layers, heads))


def audio_encoder_for(params: dict, durations: list[float]) -> tuple[WhisperEncoder, WhisperFeatureExtractor]:
    """02's audio encoder from its parameters: a pretrained Whisper's (``audio_encoder``), else a
    new one (``audio_dim``, ``audio_layers``, ``audio_heads``, ``seed``) whose chunk is as long as
    the longest clip (``durations``, seconds)."""
    if params["audio_encoder"]:
        return load_audio_encoder(params["audio_encoder"])
    seconds = chunk_seconds(durations)
    encoder = new_audio_encoder(seconds, params["audio_dim"], params["audio_layers"], params["audio_heads"],
                                params["seed"])
    return encoder, feature_extractor(seconds)


def log_mel(clips, extractor: WhisperFeatureExtractor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, 80, frames), frame mask (N, frames)) for a ``datasets`` split with an ``audio``
    column; the mask marks frames that hold the clip rather than padding."""
    features, masks = [], []
    for start in range(0, len(clips), batch_size):
        arrays = []
        for clip in clips[start:start + batch_size]["audio"]:
            samples = clip.get_all_samples()
            if samples.sample_rate != extractor.sampling_rate:
                raise ValueError(f"clip at {samples.sample_rate} Hz; the extractor expects {extractor.sampling_rate}")
            arrays.append(samples.data.mean(0).numpy().astype(np.float32))
        out = extractor(arrays, sampling_rate=extractor.sampling_rate, return_tensors="pt",
                        return_attention_mask=True, padding="max_length", truncation=True)
        features.append(out["input_features"])
        masks.append(out["attention_mask"])
    if not features:
        return torch.empty(0, MEL_BINS, 0), torch.empty(0, 0, dtype=torch.long)
    return torch.cat(features), torch.cat(masks)


def load_audio_encoder(name_or_path: str) -> tuple[WhisperEncoder, WhisperFeatureExtractor]:
    """(encoder, feature extractor) of a pretrained Whisper by hub name (needs network) or local
    path — a full Whisper checkpoint (its encoder is used) or an encoder saved by 02_train. A
    pretrained Whisper keeps its own chunk length (30 s for OpenAI's)."""
    from transformers import AutoConfig, WhisperModel

    config = AutoConfig.from_pretrained(name_or_path)
    if config.model_type != "whisper":
        raise ValueError(f"{name_or_path!r} is a {config.model_type!r} model; the audio encoder must be Whisper")
    if "WhisperEncoder" in (config.architectures or []):
        encoder = WhisperEncoder.from_pretrained(name_or_path)
    else:
        encoder = WhisperModel.from_pretrained(name_or_path).get_encoder()
    seconds = config.max_source_positions * 2 // FRAMES_PER_SECOND
    try:
        extractor = WhisperFeatureExtractor.from_pretrained(name_or_path)
    except OSError:  # no preprocessor_config.json saved beside the weights
        extractor = feature_extractor(seconds)
    return encoder, extractor
