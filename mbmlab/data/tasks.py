"""The tasks the fused model learns, as examples drawn from a processed split.

An example names its task, the image row and/or clip row it reads (rows of that split's
``images`` and ``speech`` datasets), the question (VQA) and the target text:

- ``caption``     image → its caption
- ``vqa``         image + typed question → answer
- ``asr``         clip → its transcript (every clip: spoken captions and questions)
- ``spoken_vqa``  image + the clip that speaks one of its questions → answer
- ``translate``   image + its English caption → the caption's translation (the data's ``language``);
  the source's colour (or shape) words masked for a seeded share of the images (``translate_mask``:
  the masking probe of Caglayan et al. 2019, where only the image can tell the masked word)
- ``speech_translate``  a clip that speaks a caption → the caption's translation
- ``translated_vqa``  image + a question in the data's language (its ``translated_questions``) →
  the answer in that language (``translated_answers``): VQA asked and answered in Chinese

Examples of one image are grouped into one *unit*, so a training batch encodes each image once
for all its questions; ASR examples are units of their own.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

from ..names import TASKS, TRANSLATE_TASKS, TRANSLATED_COLUMNS
from .attributes import COLOURS, SHAPES

MASK = "[mask]"  # what a masked source word becomes (one token string the tokenizer learns)
MASKABLE = {"colour": COLOURS, "shape": SHAPES}  # translate_mask_words → the words it masks


@dataclass(frozen=True)
class Example:
    task: str
    image: int | None  # row in the split's images dataset
    clip: int | None  # row in the split's speech dataset
    question: str
    target: str
    question_type: str = ""
    language: str = ""  # the target language of the translate tasks


@dataclass
class Unit:
    image: int | None
    examples: list[Example] = field(default_factory=list)


def check_tasks(tasks) -> tuple[str, ...]:
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; tasks: {', '.join(TASKS)}")
    return tuple(tasks)


def mask_words(text: str, kind: str) -> str:
    """``text`` with every whole word of ``MASKABLE[kind]`` replaced by ``MASK``."""
    if kind not in MASKABLE:
        raise ValueError(f"translate_mask_words must be one of {', '.join(MASKABLE)}, not {kind!r}")
    return re.sub(rf"\b({'|'.join(MASKABLE[kind])})\b", MASK, text)


def is_masked(image_id: str, probability: float) -> bool:
    """Whether an image's translate source is masked: a fixed draw per image id (CRC-32), so the
    same images are masked in every epoch, run and process."""
    return probability >= 1 or zlib.crc32(image_id.encode()) / 2 ** 32 < probability


def task_examples(images, speech, tasks=tuple(TASKS), translate_mask: float = 0.0,
                  mask_kind: str = "colour") -> list[Example]:
    """Every example of ``tasks`` that one split supports (``images`` / ``speech``: that split's
    datasets, either may be None). A task without data gives no examples. ``translate_mask``: the
    share of images whose translate source has its ``mask_kind`` words masked."""
    tasks = check_tasks(tasks)
    out: list[Example] = []
    row_of: dict[str, int] = {}
    translation_of: dict[str, tuple[str, str]] = {}  # image id → (translation, language)
    if images is not None:
        wanted = ["image_id", "caption", "questions", "answers", "question_types"]
        translating = bool(set(TRANSLATE_TASKS) & set(tasks)) and "translation" in images.column_names
        columns = images.select_columns(wanted + (list(TRANSLATED_COLUMNS) if translating else []))
        for i, r in enumerate(columns):
            row_of[r["image_id"]] = i
            if "vqa" in tasks:
                out += [Example("vqa", i, None, q, a, t)
                        for q, a, t in zip(r["questions"], r["answers"], r["question_types"], strict=True)]
            if "caption" in tasks and r["caption"]:
                out.append(Example("caption", i, None, "", r["caption"]))
            if translating and r["translation"] and r["caption"]:
                translation_of[r["image_id"]] = (r["translation"], r["language"])
                if "translate" in tasks:
                    source = (mask_words(r["caption"], mask_kind) if is_masked(r["image_id"], translate_mask)
                              else r["caption"])
                    out.append(Example("translate", i, None, source, r["translation"], language=r["language"]))
            if translating and "translated_vqa" in tasks:
                out += [Example("translated_vqa", i, None, q, a, t, language=r["language"])
                        for q, a, t in zip(r["translated_questions"], r["translated_answers"], r["question_types"],
                                           strict=True) if q and a]
    if speech is not None:
        columns = speech.select_columns(["image_id", "transcript", "kind", "answer", "question_type"])
        for c, r in enumerate(columns):
            if "asr" in tasks and r["transcript"]:
                out.append(Example("asr", None, c, "", r["transcript"]))
            if "speech_translate" in tasks and r["kind"] == "caption" and r["image_id"] in translation_of:
                target, language = translation_of[r["image_id"]]
                out.append(Example("speech_translate", None, c, r["transcript"], target, language=language))
            if "spoken_vqa" in tasks and r["kind"] == "question" and r["answer"] and r["image_id"] in row_of:
                out.append(Example("spoken_vqa", row_of[r["image_id"]], c, r["transcript"], r["answer"],
                                   r["question_type"]))
    return out


def units(examples: list[Example]) -> list[Unit]:
    """Examples grouped by image (in image order); examples without an image one unit each."""
    by_image: dict[int, Unit] = {}
    alone: list[Unit] = []
    for ex in examples:
        if ex.image is None:
            alone.append(Unit(None, [ex]))
        else:
            by_image.setdefault(ex.image, Unit(ex.image)).examples.append(ex)
    return [by_image[i] for i in sorted(by_image)] + alone


def task_counts(examples: list[Example]) -> dict[str, int]:
    counts = {t: 0 for t in TASKS}
    for ex in examples:
        counts[ex.task] += 1
    return counts
