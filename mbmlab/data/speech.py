"""Spoken questions and captions from real TTS engines (espeak-ng and flite, Debian packages).

Each clip is synthesised by an engine subprocess, decoded and resampled to 16 kHz mono by
torchcodec (FFmpeg), and cached under ``data/cache/speech/`` by a hash of everything that
shapes it (engine and its version, voice, text, rate, pitch), so a rerun synthesises nothing.
Clips are made in parallel (one engine process per worker thread).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .clean import SAMPLE_RATE, decode_audio, wav_bytes
from .voices import VOICES, Voice, trained_voices  # noqa: F401  (Voice: the type of VOICES' values)

CACHE_FORMAT = 1  # bump when the cached bytes would change for the same key


class EngineMissingError(RuntimeError):
    """A TTS engine is not installed."""


def engine_version(engine: str) -> str:
    """The engine's version line; raises ``EngineMissingError`` naming the Debian package."""
    if shutil.which(engine) is None:
        raise EngineMissingError(
            f"the TTS engine {engine!r} is not installed; install the Debian package: "
            f"sudo apt-get install {engine}  (./workbench installs it when run as root or with sudo)")
    out = subprocess.run([engine, "--version"], capture_output=True, text=True, check=False)
    lines = [line.strip() for line in (out.stdout + out.stderr).splitlines() if "version" in line.lower()
             or "speak" in line.lower()]
    return lines[0] if lines else "unknown"


@dataclass(frozen=True)
class Utterance:
    """What to say and how: the cache key covers every field."""
    text: str
    voice: str
    rate: float = 1.0  # speaking-rate factor (1 = the engine's default)
    pitch: float = 1.0  # pitch factor

    def key(self, versions: dict[str, str]) -> str:
        voice = VOICES[self.voice]
        blob = json.dumps({"format": CACHE_FORMAT, "engine": voice.engine, "version": versions[voice.engine],
                           "voice": voice.engine_voice, "text": self.text, "rate": round(self.rate, 4),
                           "pitch": round(self.pitch, 4), "sample_rate": SAMPLE_RATE}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def engine_command(utterance: Utterance, out_path: str) -> list[str]:
    voice = VOICES[utterance.voice]
    if voice.engine == "espeak-ng":
        return ["espeak-ng", "-v", voice.engine_voice, "-s", str(round(175 * utterance.rate)),
                "-p", str(int(np.clip(round(50 * utterance.pitch), 0, 99))), "-w", out_path, utterance.text]
    return ["flite", "-voice", voice.engine_voice,
            "--setf", f"duration_stretch={1 / utterance.rate:.4f}",
            "--setf", f"int_f0_target_mean={voice.base_f0 * utterance.pitch:.1f}",
            "-t", utterance.text, "-o", out_path]


def synthesize(utterance: Utterance) -> bytes:
    """16 kHz mono 16-bit WAV bytes of one utterance (no cache)."""
    with tempfile.TemporaryDirectory(prefix="mbmlab-tts-") as tmp:
        path = os.path.join(tmp, "clip.wav")
        done = subprocess.run(engine_command(utterance, path), capture_output=True, text=True, check=False)
        if done.returncode != 0 or not os.path.exists(path):
            raise RuntimeError(f"{VOICES[utterance.voice].engine} failed on {utterance.text!r}: "
                               f"{done.stderr.strip()[:300]}")
        samples, _, _ = decode_audio(Path(path).read_bytes())
    return wav_bytes(samples)


@dataclass
class SpeechCache:
    root: Path
    hits: int = 0
    misses: int = 0

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.wav"

    def get_or_make(self, utterance: Utterance, versions: dict[str, str]) -> bytes:
        path = self.path(utterance.key(versions))
        if path.exists():
            self.hits += 1
            return path.read_bytes()
        self.misses += 1
        data = synthesize(utterance)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}-{id(utterance)}")
        tmp.write_bytes(data)
        tmp.replace(path)  # atomic: a concurrent reader sees the whole clip or none
        return data


def synthesize_all(utterances: list[Utterance], cache: SpeechCache, workers: int | None = None,
                   progress: bool = True) -> list[bytes]:
    """Clips in the order of ``utterances``, in parallel; cached clips are read, not made."""
    from tqdm import tqdm

    versions = {engine: engine_version(engine) for engine in {VOICES[u.voice].engine for u in utterances}}
    workers = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        jobs = pool.map(lambda u: cache.get_or_make(u, versions), utterances)
        return list(tqdm(jobs, total=len(utterances), desc="speech", disable=not progress))


def add_noise(wav: bytes, snr_db: float, rng: np.random.Generator) -> bytes:
    """White noise at ``snr_db`` below the clip's RMS level."""
    samples, _, _ = decode_audio(wav)
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    noise = rng.normal(0.0, rms / 10 ** (snr_db / 20), size=samples.shape)
    return wav_bytes((samples + noise).astype(np.float32))


@dataclass(frozen=True)
class SpeechPlan:
    voices: tuple[str, ...]
    per_image: int = 2  # texts spoken per image: the caption first, then questions
    max_clips: int = 0  # per split; 0 means no cap
    rate_jitter: float = 0.0  # rate factor drawn from [1 - j, 1 + j]
    pitch_jitter: float = 0.0
    noise_snr_db: float = 0.0  # 0 means no noise
    heldout_voices: tuple[str, ...] = ()  # of ``voices``: these speak validation and test clips, never training ones


def voice_per_text(kinds: list[str], voices: list[str], rng: random.Random) -> list[str]:
    """A voice for each text: round-robin over ``voices`` within each kind of text, the texts of a
    kind in a seeded random order, the count carried on from one kind to the next — so every voice
    speaks an even share (±1) of the captions and of the questions, and of all texts. (Round-robin
    over the texts in image order would tie a voice to a kind: the texts alternate caption,
    question, and an even number of voices keeps each voice on one parity.)"""
    out: list[str] = [""] * len(kinds)
    turn = 0
    for kind in sorted(set(kinds)):
        order = [i for i, k in enumerate(kinds) if k == kind]
        rng.shuffle(order)
        for i in order:
            out[i] = voices[turn % len(voices)]
            turn += 1
    return out


def plan_clips(image_rows: dict[str, list[dict]], plan: SpeechPlan, seed: int) -> list[dict]:
    """Which text of which image each voice speaks, per split (clips inherit their image's split).

    Voices are assigned round-robin within each kind of text (``voice_per_text``), so every voice
    gets an even share of every split and of every kind of text — except ``plan.heldout_voices``, which speak only
    in the validation and test splits (how a model hears a speaker it never trained on; in validation too, so
    that what is chosen there — checkpoints, epochs, settings — answers for them as test will ask).
    """
    unknown = [v for v in plan.voices if v not in VOICES]
    if unknown or not plan.voices:
        raise ValueError(f"unknown voices {unknown}; known voices: {', '.join(VOICES)}")
    seen = trained_voices(plan.voices, plan.heldout_voices)
    clips = []
    for split, rows in image_rows.items():
        rng = random.Random(f"speech/{seed}/{split}")
        texts = []
        for row in rows:
            options = ([("caption", row["caption"], "", "")] if row["caption"] else []) + [
                ("question", q, a, t) for q, a, t in zip(row["questions"], row["answers"], row["question_types"])]
            chosen = options[:1] + rng.sample(options[1:], min(len(options) - 1, plan.per_image - 1)) \
                if options else []
            texts += [(row["image_id"], *option) for option in chosen[:plan.per_image]]
        if plan.max_clips and len(texts) > plan.max_clips:
            keep = sorted(rng.sample(range(len(texts)), plan.max_clips))
            texts = [texts[i] for i in keep]
        voices = seen if split == "train" else list(plan.voices)
        rng.shuffle(voices)
        speaker = voice_per_text([t[1] for t in texts], voices, rng)
        for i, (image_id, kind, text, answer, qtype) in enumerate(texts):
            voice = VOICES[speaker[i]]
            rate = 1 + rng.uniform(-plan.rate_jitter, plan.rate_jitter) if plan.rate_jitter else 1.0
            pitch = 1 + rng.uniform(-plan.pitch_jitter, plan.pitch_jitter) if plan.pitch_jitter else 1.0
            clips.append({"clip_id": f"speech-{split}-{i}", "split": split, "image_id": image_id,
                          "source": "speech", "kind": kind, "transcript": text, "answer": answer,
                          "question_type": qtype, "engine": voice.engine, "voice": voice.name,
                          "accent": voice.accent, "gender": voice.gender,
                          "utterance": Utterance(text, voice.name, round(rate, 4), round(pitch, 4))})
    return clips


def word_sequences(texts: list[str], count: int, rng: random.Random, swap_share: float = 1.0) -> list[str]:
    """``count`` new sentences for speech training made of the words of ``texts`` (lower case,
    punctuation dropped), to break the few templates' hold on what the recogniser expects to hear
    (text diversity for TTS-trained speech; the issue's anchor). Each starts from a text drawn at
    random and replaces each of its words, with probability ``swap_share``, by a word drawn
    uniformly from the vocabulary — at 1.0 a random word sequence as long as a real text, at 0.3 a
    real sentence with about a third of its words swapped. Uniform draws give a rare word (a colour,
    a shape) as many turns as "the"."""
    if not 0.0 <= swap_share <= 1.0:
        raise ValueError(f"swap_share is a share in [0, 1], got {swap_share}")
    sentences = [re.findall(r"[a-z0-9']+", t.lower()) for t in texts]
    sentences = [s for s in sentences if s]
    if count and not sentences:
        raise ValueError("no words to build sentences from: every text is empty")
    vocabulary = sorted({w for s in sentences for w in s})
    out = []
    for _ in range(count):
        words = rng.choice(sentences)
        out.append(" ".join(rng.choice(vocabulary) if rng.random() < swap_share else w for w in words))
    return out


def speak(clips: list[dict], plan: SpeechPlan, cache: SpeechCache, seed: int, progress: bool = True) -> list[dict]:
    """Attach ``audio`` bytes (and noise, when asked) to each planned clip."""
    audio = synthesize_all([c["utterance"] for c in clips], cache, progress=progress)
    out = []
    for clip, wav in zip(clips, audio, strict=True):
        if plan.noise_snr_db:
            clip_seed = int(hashlib.sha256(clip["clip_id"].encode()).hexdigest()[:8], 16)
            wav = add_noise(wav, plan.noise_snr_db, np.random.default_rng([seed, clip_seed]))
        record = {k: v for k, v in clip.items() if k != "utterance"}
        record.update(audio=wav, rate=clip["utterance"].rate, pitch=clip["utterance"].pitch)
        out.append(record)
    return out
