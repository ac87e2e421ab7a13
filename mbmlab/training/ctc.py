"""02_train's CTC pretraining of the audio encoder: the encoder and a linear head over characters
learn to spell each clip's transcript (``mbmlab.models.ctc``), the training batches (only they)
speed-perturbed and SpecAugment-masked, before the encoder is aligned to text and joined to the
decoder in 03. The weights with the lowest validation WER (greedy CTC decoding) are kept.
"""
from __future__ import annotations

import math
import random
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset
from transformers import TrainerCallback

from ..data.voices import tts_voices
from ..metrics.vqa import normalise_answer
from ..models import ctc


def encode(text: str, characters: str = ctc.CHARACTERS) -> list[int]:
    """The normalised transcript as CTC targets (1-based indices; 0 is the blank). A character
    outside the vocabulary raises: a target that silently drops letters would teach wrong spellings."""
    normal = normalise_answer(text)
    unknown = sorted({c for c in normal if c not in characters})
    if unknown:
        raise ValueError(f"{text!r} has characters outside the CTC vocabulary: {unknown}")
    return [characters.index(c) + 1 for c in normal]


def unknown_characters(texts, characters: str = ctc.CHARACTERS) -> dict[str, int]:
    """Characters of the normalised texts that the vocabulary lacks, with the texts holding them
    (02 refuses to pretrain on such data and says which)."""
    out: dict[str, int] = {}
    for text in texts:
        for c in set(normalise_answer(text)) - set(characters):
            out[c] = out.get(c, 0) + 1
    return out


def targets(texts: list[str], characters: str = ctc.CHARACTERS) -> tuple[torch.Tensor, torch.Tensor]:
    """(concatenated targets, target lengths) for ``ctc_loss``."""
    encoded = [encode(t, characters) for t in texts]
    return (torch.tensor([i for e in encoded for i in e], dtype=torch.long),
            torch.tensor([len(e) for e in encoded], dtype=torch.long))


class CtcModel(nn.Module):
    """A Whisper encoder and a ``CtcHead``; with ``augment``, the features are speed-perturbed,
    warped (``warp``, vocal tract length perturbation) and SpecAugment-masked (``masks``: the
    policy where it differs from ``spec_augment``'s defaults) while training (``models.ctc.augment``)."""

    def __init__(self, encoder: nn.Module, characters: str = ctc.CHARACTERS, augment: bool = True, warp: float = 0.0,
                 masks: dict | None = None):
        super().__init__()
        self.encoder = encoder
        self.head = ctc.CtcHead(encoder.config.d_model, characters)
        self.augment, self.warp, self.masks = augment, warp, masks

    def log_probs(self, input_features: torch.Tensor, frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and self.augment:
            input_features, frame_mask = ctc.augment(input_features, frame_mask, warp=self.warp, masks=self.masks)
        frames = self.encoder(input_features=input_features).last_hidden_state
        return self.head(frames), ctc.frame_lengths(frame_mask, frames.shape[1])

    def forward(self, input_features, frame_mask, ctc_targets=None, ctc_target_lengths=None) -> dict:
        log_probs, lengths = self.log_probs(input_features, frame_mask)
        out = {"logits": log_probs}
        if ctc_targets is not None:
            out["loss"] = ctc.ctc_loss(log_probs, lengths, ctc_targets, ctc_target_lengths)
        return out

    def save_head(self, path: Path) -> None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(Path(path)),
                  metadata={"characters": self.head.characters})


def load_head(path: Path) -> ctc.CtcHead:
    """A ``CtcHead`` saved by ``CtcModel.save_head``."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
        characters = f.metadata()["characters"]
    head = ctc.CtcHead(state["proj.weight"].shape[1], characters)
    head.load_state_dict(state)
    return head


class Clips(Dataset):
    """One split's clips (log-mel features, frame mask) with their transcripts."""

    def __init__(self, features: torch.Tensor, frame_mask: torch.Tensor, transcripts: list[str]):
        if not len(features) == len(frame_mask) == len(transcripts):
            raise ValueError("features, masks and transcripts differ in length")
        self.features, self.frame_mask, self.transcripts = features, frame_mask, list(transcripts)

    def __len__(self) -> int:
        return len(self.transcripts)

    def __getitem__(self, i: int) -> dict:
        return {"input_features": self.features[i], "frame_mask": self.frame_mask[i], "text": self.transcripts[i]}

    def __add__(self, other: "Clips") -> "Clips":
        return Clips(torch.cat([self.features, other.features]), torch.cat([self.frame_mask, other.frame_mask]),
                     self.transcripts + other.transcripts)


def word_sequence_clips(train, count: int, seed: int, cache_root: Path, extractor, swap_share: float = 1.0,
                        jitter: float = 0.0) -> Clips:
    """``count`` training clips of new sentences made of the words of ``train``'s transcripts
    (``mbmlab.data.speech.word_sequences``), spoken in turn by the TTS voices that speak ``train``
    (so never a held-out voice) and cached under ``cache_root`` like 01's clips; ``jitter``: each
    clip's pitch drawn from 1 ± jitter and its speaking rate from 1 ± jitter / 2. A clip longer
    than the extractor's chunk is dropped, and the count said (cut short, its transcript would
    hold words it does not). Raises ValueError when no training clip is spoken by a TTS voice (a
    user's recordings)."""
    import datasets

    from ..data import speech as tts
    from ..data.collect import SPEECH_FEATURES
    from ..models.audio import log_mel

    voices = tts_voices(train)
    if not voices:
        raise ValueError("word-sequence clips are spoken by the TTS voices of the training clips, and no training "
                         "clip has one (recorded speech): set audio_ctc_word_sequences=0")
    rng = random.Random(f"words/{seed}")
    sentences = tts.word_sequences(list(train["transcript"]), count, rng, swap_share)
    utterances = [tts.Utterance(t, voices[i % len(voices)], round(1 + rng.uniform(-jitter, jitter) / 2, 4),
                                round(1 + rng.uniform(-jitter, jitter), 4)) for i, t in enumerate(sentences)]
    wavs = tts.synthesize_all(utterances, tts.SpeechCache(Path(cache_root)), progress=False)
    rows = datasets.Dataset.from_list(
        [{"audio": {"bytes": wav, "path": None}, "transcript": t} for t, wav in zip(sentences, wavs, strict=True)],
        features=datasets.Features({"audio": SPEECH_FEATURES["audio"], "transcript": datasets.Value("string")}))
    features, mask = log_mel(rows, extractor)
    fits = mask.sum(1) < mask.shape[1]
    if not fits.all():
        print(f"dropped {int((~fits).sum())} of {count} word-sequence clips longer than the audio encoder's "
              f"{extractor.chunk_length}-s chunk")
    return Clips(features[fits], mask[fits], [t for t, keep in zip(sentences, fits.tolist(), strict=True) if keep])


class ClipCollator:
    def __init__(self, characters: str = ctc.CHARACTERS):
        self.characters = characters

    def __call__(self, items: list[dict]) -> dict:
        flat, lengths = targets([it["text"] for it in items], self.characters)
        return {"input_features": torch.stack([it["input_features"] for it in items]),
                "frame_mask": torch.stack([it["frame_mask"] for it in items]),
                "ctc_targets": flat, "ctc_target_lengths": lengths}


@torch.no_grad()
def transcribe(model: CtcModel, clips: Clips, batch_size: int = 128) -> list[str]:
    """Greedy CTC transcripts of every clip (the model in eval mode: no masking)."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(clips), batch_size):
        log_probs, lengths = model.log_probs(clips.features[start:start + batch_size],
                                             clips.frame_mask[start:start + batch_size])
        out += ctc.greedy_decode(log_probs, lengths, model.head.characters)
    model.train(was_training)
    return out


def scores(model: CtcModel, clips: Clips) -> dict[str, float]:
    from ..metrics.asr import error_rates

    return error_rates(clips.transcripts, transcribe(model, clips))


class WerCallback(TrainerCallback):
    """After each evaluation, the validation WER and CER join the metrics (``metric_for_best_model="wer"``)."""

    def __init__(self, clips: Clips):
        self.clips = clips

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        extra = {f"eval_{k}": v for k, v in scores(model, self.clips).items()}
        metrics.update(extra)
        if state.log_history and "eval_loss" in state.log_history[-1]:
            state.log_history[-1].update(extra)
        return control


def pretrain_ctc(encoder: nn.Module, clips: dict[str, Clips], output_dir: Path, *, epochs: float, batch_size: int,
                 learning_rate: float, seed: int, augment: bool = True, bf16: bool = False, resume: bool = False,
                 evaluations: int = 10, warp: float = 0.0, masks: dict | None = None):
    """Train ``encoder`` + a CTC head on ``clips["train"]``, validating ``evaluations`` times and
    keeping the weights with the lowest validation WER. Returns (model, trainer, test scores
    before, after)."""
    from . import trainer as T

    torch.manual_seed(seed)
    model = CtcModel(encoder, augment=augment, warp=warp, masks=masks)
    before = scores(model, clips["test"])
    # ten validations in all (each epoch's would cost a third of the training on a CPU)
    every = max(1, math.ceil(math.ceil(len(clips["train"]) / batch_size) * epochs / evaluations))
    args = T.training_arguments(output_dir, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                                seed=seed, n_examples=len(clips["train"]), eval_strategy="steps", eval_steps=every,
                                save_strategy="steps", save_steps=every, save_total_limit=1, bf16=bf16,
                                max_grad_norm=1.0,
                                label_names=["ctc_targets"], prediction_loss_only=True,  # eval_loss, no logits
                                load_best_model_at_end=True, metric_for_best_model="wer", greater_is_better=False)
    trainer = T.train(model, args, clips["train"], ClipCollator(), eval_dataset=clips["validation"], resume=resume,
                      callbacks=[WerCallback(clips["validation"])])
    model.eval()
    return model, trainer, before, scores(model, clips["test"])


def pretrain_audio_tower(run: Path, speech, params: dict):
    """02_train's CTC step: a new audio encoder (or the pretrained Whisper's, ``audio_encoder``)
    trained with a CTC head for ``audio_ctc_epochs``; the head is saved as
    ``run/audio_encoder/ctc_head.safetensors`` for 03's auxiliary loss. Returns ((encoder, feature
    extractor), (test scores before, after) or None, loss history or None); with no speech, all None."""
    from ..models import audio
    from .trainer import loss_history

    if speech is None:
        return None, None, None
    encoder, extractor = audio.audio_encoder_for(params, [d for split in speech.values() for d in split["duration"]])
    if params["audio_ctc_epochs"] <= 0:
        return (encoder, extractor), None, None
    words = params["audio_ctc_word_sequences"]
    if words and not tts_voices(speech["train"]):
        print(f"no word-sequence clips (audio_ctc_word_sequences={words}): no training clip is spoken by a TTS voice "
              f"to say them (recorded speech)")
        words = 0
    unknown = unknown_characters(speech["train"]["transcript"])
    if unknown:
        raise ValueError(f"training transcripts hold characters the CTC vocabulary lacks {unknown}; set "
                         f"audio_ctc_epochs=0 to skip CTC pretraining")
    clips = {s: Clips(*audio.log_mel(speech[s], extractor), speech[s]["transcript"])
             for s in ("train", "validation", "test")}
    if words:
        from ..artifacts import load_json

        extra = word_sequence_clips(speech["train"], words, params["seed"],
                                    Path(load_json(run, "dataset.json")["path"]).parent.parent / "cache" / "speech",
                                    extractor)
        print(f"CTC pretraining: {len(clips['train'])} training clips and {len(extra)} word-sequence clips "
              f"(e.g. {extra.transcripts[0]!r})")
        clips["train"] = clips["train"] + extra
    model, trainer, before, after = pretrain_ctc(
        encoder, clips, Path(run) / "checkpoints" / "ctc_audio", epochs=params["audio_ctc_epochs"],
        batch_size=params["audio_ctc_batch_size"], learning_rate=params["audio_ctc_learning_rate"],
        seed=params["seed"], augment=params["spec_augment"], bf16=params["bf16"], resume=params["resume"],
        warp=params["vtlp_warp"])
    (Path(run) / "audio_encoder").mkdir(parents=True, exist_ok=True)
    model.save_head(Path(run) / "audio_encoder" / "ctc_head.safetensors")
    return (model.encoder, extractor), (before, after), loss_history(trainer)


def ctc_metrics(result: tuple[dict, dict] | None) -> dict[str, float]:
    """``ctc/audio/wer`` and ``…/cer`` (greedy CTC decoding of the test clips after pretraining)
    and the same model at its random initialisation, ``baseline/random_init/ctc/audio/…``."""
    if result is None:
        return {}
    before, after = result
    return {f"ctc/audio/{k}": v for k, v in after.items()} | {f"baseline/random_init/ctc/audio/{k}": v
                                                               for k, v in before.items()}


def ctc_line(result: tuple[dict, dict] | None) -> str:
    if result is None:
        return "no CTC pretraining (no speech, or audio_ctc_epochs=0)"
    before, after = result
    return (f"greedy CTC transcripts of the test clips: WER {after['wer']:.4f}, CER {after['cer']:.4f} "
            f"(random init: WER {before['wer']:.4f}, CER {before['cer']:.4f})")
