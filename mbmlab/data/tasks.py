"""The four tasks the fused model learns, as examples drawn from a processed split.

An example names its task, the image row and/or clip row it reads (rows of that split's
``images`` and ``speech`` datasets), the question (VQA) and the target text:

- ``caption``     image → its caption
- ``vqa``         image + typed question → answer
- ``asr``         clip → its transcript (every clip: spoken captions and questions)
- ``spoken_vqa``  image + the clip that speaks one of its questions → answer

Examples of one image are grouped into one *unit*, so a training batch encodes each image once
for all its questions; ASR examples are units of their own.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..names import TASKS


@dataclass(frozen=True)
class Example:
    task: str
    image: int | None  # row in the split's images dataset
    clip: int | None  # row in the split's speech dataset
    question: str
    target: str
    question_type: str = ""


@dataclass
class Unit:
    image: int | None
    examples: list[Example] = field(default_factory=list)


def check_tasks(tasks) -> tuple[str, ...]:
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; tasks: {', '.join(TASKS)}")
    return tuple(tasks)


def task_examples(images, speech, tasks=tuple(TASKS)) -> list[Example]:
    """Every example of ``tasks`` that one split supports (``images`` / ``speech``: that split's
    datasets, either may be None). A task without data gives no examples."""
    tasks = check_tasks(tasks)
    out: list[Example] = []
    row_of: dict[str, int] = {}
    if images is not None:
        columns = images.select_columns(["image_id", "caption", "questions", "answers", "question_types"])
        for i, r in enumerate(columns):
            row_of[r["image_id"]] = i
            if "vqa" in tasks:
                out += [Example("vqa", i, None, q, a, t)
                        for q, a, t in zip(r["questions"], r["answers"], r["question_types"], strict=True)]
            if "caption" in tasks and r["caption"]:
                out.append(Example("caption", i, None, "", r["caption"]))
    if speech is not None:
        columns = speech.select_columns(["image_id", "transcript", "kind", "answer", "question_type"])
        for c, r in enumerate(columns):
            if "asr" in tasks and r["transcript"]:
                out.append(Example("asr", None, c, "", r["transcript"]))
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
