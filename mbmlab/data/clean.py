"""Cleaning rules shared by every source, and the drop report that records what they removed.

Each rule either returns the cleaned value or raises ``Dropped`` with a reason. The ``Cleaner``
applies the rules to whole records and writes every drop (and every silent-looking fix, such as
a mode conversion or a resampling) into the ``DropReport``: nothing disappears without a line.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import unicodedata
import wave
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000


class Dropped(ValueError):
    """A record (or one part of it) fails a cleaning rule."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class EmptySourceError(RuntimeError):
    """Cleaning dropped every record of a source."""


@dataclass
class DropReport:
    """Every record or part of a record that cleaning removed (``entries``), and every change it
    made to a kept record (``changes``: converted to RGB, resampled), each with its reason."""
    entries: list[dict] = field(default_factory=list)
    changes: list[dict] = field(default_factory=list)

    def add(self, source: str, record_id: str, reason: str, detail: str = "", scope: str = "record") -> None:
        self.entries.append({"source": source, "id": record_id, "reason": reason,
                             "detail": detail, "scope": scope})
        log.info("dropped %s %s (%s): %s %s", scope, record_id, source, reason, detail)

    def change(self, source: str, record_id: str, what: str) -> None:
        self.changes.append({"source": source, "id": record_id, "change": what})

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(f"{e['scope']}: {e['reason']}" for e in self.entries).items()))

    def counts_by_source(self) -> dict[str, dict[str, int]]:
        out: dict[str, Counter] = {}
        for e in self.entries:
            out.setdefault(e["source"], Counter())[f"{e['scope']}: {e['reason']}"] += 1
        return {s: dict(sorted(c.items())) for s, c in sorted(out.items())}

    def change_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(c["change"] for c in self.changes).items()))

    def examples(self, per_reason: int = 3) -> list[dict]:
        seen: Counter = Counter()
        out = []
        for entry in self.entries:
            key = (entry["scope"], entry["reason"])
            if seen[key] < per_reason:
                seen[key] += 1
                out.append(entry)
        return out

    def extend(self, other: "DropReport") -> None:
        self.entries.extend(other.entries)
        self.changes.extend(other.changes)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"counts": self.counts(), "changes": self.change_counts(),
                                    "entries": self.entries, "change_log": self.changes}, indent=1))

    @classmethod
    def load(cls, path: Path) -> "DropReport":
        saved = json.loads(Path(path).read_text())
        return cls(saved["entries"], saved.get("change_log", []))


# ---------------------------------------------------------------- rules on single values

def clean_text(value) -> str:
    """Unicode-normalised (NFC), whitespace-collapsed text; raises ``Dropped`` if nothing is left."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as err:
            raise Dropped("undecodable text", f"not UTF-8 ({err.reason} at byte {err.start})") from None
    if value is None:
        raise Dropped("empty text", "missing")
    text = " ".join(unicodedata.normalize("NFC", str(value)).split())
    if not text:
        raise Dropped("empty text", "empty or whitespace only")
    return text


@dataclass(frozen=True)
class CleanImage:
    png: bytes
    digest: str  # sha256 of the decoded RGB pixels: the same picture saved twice has one digest
    converted_from: str  # original mode when it was not RGB, else ""


def clean_image(data: bytes, min_size: int) -> CleanImage:
    """Decode fully (truncated files fail here), convert to RGB, check the size, re-encode as PNG."""
    if not data:
        raise Dropped("undecodable image", "0 bytes")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            mode = im.mode
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise Dropped("undecodable image", str(err)) from None
    if min(rgb.size) < min_size:
        raise Dropped("image too small", f"{rgb.size[0]}×{rgb.size[1]} < {min_size} px")
    digest = hashlib.sha256(f"{rgb.size}".encode() + rgb.tobytes()).hexdigest()
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG")
    return CleanImage(buffer.getvalue(), digest, "" if mode == "RGB" else mode)


@dataclass(frozen=True)
class CleanAudio:
    wav: bytes  # 16-bit PCM, mono, SAMPLE_RATE
    digest: str
    duration: float
    resampled_from: int  # original rate when it differed, else 0
    downmixed_from: int  # original channel count when > 1, else 0


def decode_audio(data: bytes) -> tuple[np.ndarray, int, int]:
    """(mono float32 samples at SAMPLE_RATE, original rate, original channels) via torchcodec/FFmpeg."""
    from torchcodec.decoders import AudioDecoder

    if not data:
        raise Dropped("undecodable audio", "0 bytes")
    try:
        decoder = AudioDecoder(data, sample_rate=SAMPLE_RATE, num_channels=1)
        meta = decoder.metadata
        samples = decoder.get_all_samples().data.numpy()[0]
    except Exception as err:  # torchcodec raises RuntimeError/ValueError for bad streams
        raise Dropped("undecodable audio", str(err).splitlines()[0][:200]) from None
    return samples.astype(np.float32), int(meta.sample_rate or SAMPLE_RATE), int(meta.num_channels or 1)


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def dbfs(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


def clean_audio(data: bytes, min_seconds: float, max_seconds: float, silence_dbfs: float) -> CleanAudio:
    """Decode, down-mix to mono, resample to 16 kHz; reject silent, too short or too long clips."""
    samples, rate, channels = decode_audio(data)
    duration = len(samples) / SAMPLE_RATE
    if duration < min_seconds:
        raise Dropped("audio too short", f"{duration:.3f} s < {min_seconds} s")
    if duration > max_seconds:
        raise Dropped("audio too long", f"{duration:.1f} s > {max_seconds} s")
    level = dbfs(samples)
    if level < silence_dbfs:
        raise Dropped("silent audio", f"RMS level {level:.1f} dBFS < {silence_dbfs} dBFS")
    wav = wav_bytes(samples)
    digest = hashlib.sha256(wav[44:]).hexdigest()
    return CleanAudio(wav, digest, duration, rate if rate != SAMPLE_RATE else 0, channels if channels > 1 else 0)


# ---------------------------------------------------------------- whole records

@dataclass
class Cleaner:
    """Applies the rules to image and audio records of any source, with one duplicate index."""
    drops: DropReport
    min_image_size: int = 16
    min_audio_seconds: float = 0.2
    max_audio_seconds: float = 30.0
    silence_dbfs: float = -60.0
    _seen_images: dict = field(default_factory=dict)
    _seen_audio: dict = field(default_factory=dict)

    def image_record(self, record: dict) -> dict | None:
        """``record``: image_id, source, image (bytes or None), caption, questions, answers,
        question_types, plus any attribute columns. Returns the row or None (reason logged)."""
        source, rid = record["source"], record["image_id"]
        try:
            if record.get("image") is None:
                raise Dropped("missing image", record.get("missing_detail", "no image for this record"))
            image = clean_image(record["image"], self.min_image_size)
            if image.digest in self._seen_images:
                raise Dropped("duplicate image", f"same pixels as {self._seen_images[image.digest]}")
            caption = self._optional_text(record, "caption")
            translation = self._optional_text(record, "translation")
            if translation and not caption:  # a translation of nothing cannot be trained on
                self.drops.add(source, rid, "translation without a caption", translation[:80], scope="translation")
                translation = ""
            questions, answers, types = self._qa(record)
            if not caption and not questions:
                raise Dropped("missing text", "no caption and no question/answer pair")
        except Dropped as drop:
            self.drops.add(source, rid, drop.reason, drop.detail)
            return None
        self._seen_images[image.digest] = rid
        if image.converted_from:
            self.drops.change(source, rid, f"converted {image.converted_from} to RGB")
        row = {k: v for k, v in record.items() if k != "missing_detail"}
        row.update(image={"bytes": image.png, "path": None}, caption=caption, translation=translation,
                   questions=questions, answers=answers, question_types=types)
        return row

    def audio_record(self, record: dict) -> dict | None:
        """``record``: clip_id, source, audio (bytes or None), transcript, plus label columns."""
        source, rid = record["source"], record["clip_id"]
        try:
            if record.get("audio") is None:
                raise Dropped("missing audio", record.get("missing_detail", "no audio for this record"))
            transcript = clean_text(record["transcript"])
            audio = clean_audio(record["audio"], self.min_audio_seconds, self.max_audio_seconds,
                                self.silence_dbfs)
            key = (audio.digest, record.get("image_id", ""))
            if key in self._seen_audio:
                raise Dropped("duplicate audio", f"same samples (and image) as {self._seen_audio[key]}")
        except Dropped as drop:
            self.drops.add(source, rid, drop.reason, drop.detail)
            return None
        self._seen_audio[key] = rid
        if audio.resampled_from:
            self.drops.change(source, rid, f"resampled {audio.resampled_from} Hz to {SAMPLE_RATE} Hz")
        if audio.downmixed_from:
            self.drops.change(source, rid, f"down-mixed {audio.downmixed_from} channels to mono")
        row = {k: v for k, v in record.items() if k != "missing_detail"}
        row.update(audio={"bytes": audio.wav, "path": None}, transcript=transcript,
                   duration=round(audio.duration, 4))
        return row

    def _optional_text(self, record: dict, key: str) -> str:
        if not record.get(key):
            return ""
        try:
            return clean_text(record[key])
        except Dropped as drop:  # the record may still have questions; only this text goes
            self.drops.add(record["source"], record["image_id"], drop.reason, drop.detail, scope=key)
            return ""

    def _qa(self, record: dict) -> tuple[list[str], list[str], list[str]]:
        questions, answers = record.get("questions") or [], record.get("answers") or []
        types = record.get("question_types") or [""] * len(questions)
        if not (len(questions) == len(answers) == len(types)):
            raise Dropped("malformed QA", f"{len(questions)} questions, {len(answers)} answers")
        kept = ([], [], [])
        for i, (q, a, t) in enumerate(zip(questions, answers, types)):
            try:
                pair = clean_text(q), clean_text(a)
            except Dropped as drop:
                self.drops.add(record["source"], f"{record['image_id']}#q{i}", drop.reason, drop.detail,
                               scope="question")
                continue
            for column, value in zip(kept, (*pair, t)):
                column.append(value)
        return kept
