"""``mbmlab ask``: the seed's customer-service application — ask a trained fused model about a
picture, by typing or by voice, and hear the answer.

The task follows from what is given: image + spoken question → spoken VQA; image + typed
question → VQA; image alone → a caption; a clip alone → its transcript.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


class AskError(ValueError):
    """Inputs that ``mbmlab ask`` cannot use; the message says what to change."""


@dataclass
class Answer:
    task: str
    prompt: str
    text: str


def fused_folder(path: str | Path) -> Path:
    """A run folder (its ``fused/``) or a saved fused model folder."""
    path = Path(path)
    for folder in (path / "fused", path):
        if (folder / "config.json").is_file() and (folder / "processor_config.json").is_file():
            return folder
    raise AskError(f"{path} holds no fused model (no fused/config.json); run the series up to 03_fuse first")


def load(path: str | Path):
    """(model, processor) of a run's fused model, through the transformers Auto classes."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from . import models  # noqa: F401  (registers the family)

    folder = fused_folder(path)
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
    from .data.clean import Dropped, decode_audio

    try:
        samples, _, _ = decode_audio(Path(path).read_bytes())
    except FileNotFoundError:
        raise AskError(f"no audio file at {path}") from None
    except Dropped as err:
        raise AskError(f"{path}: {err.reason} ({err.detail})") from None
    return samples


def task_for(image: bool, audio: bool, question: bool) -> str:
    if audio and question:
        raise AskError("give the question either typed (--question) or spoken (--audio), not both")
    if image:
        return "spoken_vqa" if audio else "vqa" if question else "caption"
    if audio:
        return "asr"
    raise AskError("nothing to answer about: give --image (with --question or --audio), or --audio alone")


def ask(model, processor, image=None, audio=None, question: str = "", max_new_tokens: int = 24,
        num_beams: int = 1) -> Answer:
    """The model's answer for a PIL image and/or 16 kHz samples and/or a typed question."""
    import torch

    task = task_for(image is not None, audio is not None, bool(question))
    missing = [m for m in (("image",) if image is not None else ()) + (("audio",) if audio is not None else ())
               if m not in model.config.modalities]
    if missing:
        raise AskError(f"this model was trained without {' and '.join(missing)} input; "
                       f"its inputs are {', '.join(model.config.modalities) or 'text only'}")
    prompt = processor.prompt(task, question)
    inputs = processor(text=prompt, images=[image] if image is not None else None,
                       audio=[audio] if audio is not None else None)
    tokenizer = processor.tokenizer
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    return Answer(task, prompt, text)


def speak(text: str, path: str | Path, voice: str = "en-us") -> Path:
    """Speak ``text`` into a WAV file with espeak-ng."""
    if shutil.which("espeak-ng") is None:
        raise AskError("--speak needs espeak-ng: sudo apt-get install espeak-ng")
    if not text:
        raise AskError("the model's answer is empty; nothing to speak")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    return path
