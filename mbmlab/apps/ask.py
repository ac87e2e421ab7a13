"""``mbmlab ask``: the seed's customer-service application — ask a trained fused model about a
picture, by typing or by voice, and hear the answer.

The task follows from what is given (``mbmlab.metrics.generate.task_for``): image + spoken
question → spoken VQA; image + typed question → VQA; image alone → a caption; a clip alone →
its transcript; with ``--to LANGUAGE``, image + ``--translate TEXT`` → the text translated, a clip
alone → the spoken caption translated. This module adds what the command needs around it:
loading a run's model, reading files, speaking the answer.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..metrics.generate import Answer, AskError, ask, task_for  # noqa: F401  (the app's API in one place)


def fused_folder(path: str | Path) -> Path:
    """A run folder (its ``fused/``) or a saved fused model folder."""
    path = Path(path)
    for folder in (path / "fused", path):
        if (folder / "config.json").is_file() and (folder / "processor_config.json").is_file():
            return folder
    raise AskError(f"{path} holds no fused model (no fused/config.json); run the series up to 03_fuse first")


def load_fused(path: str | Path):
    """(model, processor) of a run's fused model, through the transformers Auto classes."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from .. import models  # noqa: F401  (registers the family)

    from ..artifacts import CorruptArtifactError, check_model_folder

    folder = fused_folder(path)
    try:
        check_model_folder(folder, "03_fuse (mbmlab run --resume, or a new run)")
    except CorruptArtifactError as err:
        raise AskError(str(err)) from None
    return AutoModelForImageTextToText.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)


def read_image(path: str | Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise AskError(f"no image at {path}") from None
    except (UnidentifiedImageError, OSError) as err:
        raise AskError(f"{path} is not an image PIL can read: {err}") from None


def read_audio(path: str | Path):
    """Mono float samples at 16 kHz (FFmpeg resamples and down-mixes whatever the file holds)."""
    from ..data.clean import Dropped, decode_audio

    try:
        samples, _, _ = decode_audio(Path(path).read_bytes())
    except FileNotFoundError:
        raise AskError(f"no audio file at {path}") from None
    except Dropped as err:
        raise AskError(f"{path}: {err.reason} ({err.detail})") from None
    return samples


def speak(text: str, path: str | Path, language: str = "") -> Path:
    """Speak ``text`` into a 16 kHz mono WAV file with espeak-ng: English, or the voice of
    ``language`` (``mbmlab.names.LANGUAGES``: Mandarin's ``cmn`` for zh), resampled by FFmpeg."""
    from ..data.clean import decode_audio, wav_bytes
    from ..names import LANGUAGES

    if shutil.which("espeak-ng") is None:
        raise AskError("--speak needs espeak-ng: sudo apt-get install espeak-ng")
    if not text:
        raise AskError("the model's answer is empty; nothing to speak")
    if language and language not in LANGUAGES:
        raise AskError(f"no voice for language {language!r}; supported: {', '.join(LANGUAGES)}")
    voice = LANGUAGES[language]["espeak_voice"] if language else "en-us"
    spoken = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], check=True, capture_output=True).stdout
    samples, _, _ = decode_audio(spoken)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(samples))
    return path
