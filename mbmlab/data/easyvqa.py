"""The easy-VQA dataset (pip package ``easy-vqa``): one coloured shape per 64×64 image.

Each image comes with ~10 questions. We derive one caption per image ("a blue rectangle")
from its question/answer pairs, so the same images serve captioning and VQA.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


from .attributes import COLOURS, EASYVQA_SHAPES as SHAPES  # noqa: F401  (easy-VQA draws three shapes)
NEGATIONS = {"not", "no"}


class CaptionError(ValueError):
    """The QA pairs of an image do not determine its colour and shape."""


@dataclass
class _Evidence:
    present: set = field(default_factory=set)
    absent: set = field(default_factory=set)

    def resolve(self, vocabulary: tuple[str, ...], what: str) -> str:
        if self.present & self.absent:
            raise CaptionError(f"{what} both present and absent: {sorted(self.present & self.absent)}")
        if len(self.present) > 1:
            raise CaptionError(f"conflicting {what}s: {sorted(self.present)}")
        if self.present:
            return next(iter(self.present))
        remaining = [v for v in vocabulary if v not in self.absent]
        if len(remaining) == 1:
            return remaining[0]
        raise CaptionError(f"{what} undetermined ({len(remaining)} candidates left)")


def question_type(answer: str) -> str:
    """easy-VQA's three question types, named by what the answer is."""
    if answer in COLOURS:
        return "colour"
    if answer in SHAPES:
        return "shape"
    if answer in ("yes", "no"):
        return "yes/no"
    raise ValueError(f"unknown easy-VQA answer {answer!r}")


def derive_attributes(questions: list[str], answers: list[str]) -> tuple[str, str]:
    """(colour, shape) of an image, read off its QA pairs.

    "what color is the triangle? → blue" says colour=blue and shape=triangle;
    "is there not a red shape? → yes" says the colour is not red; and so on.
    Raises ``CaptionError`` when the pairs conflict or leave either attribute open.
    """
    colour, shape = _Evidence(), _Evidence()
    for question, answer in zip(questions, answers, strict=True):
        words = re.findall(r"[a-z]+", question.lower())
        mentioned_colours = [w for w in words if w in COLOURS]
        mentioned_shapes = [w for w in words if w in SHAPES]
        kind = question_type(answer)
        if kind == "colour":
            colour.present.add(answer)
            shape.present.update(mentioned_shapes)
        elif kind == "shape":
            shape.present.add(answer)
            colour.present.update(mentioned_colours)
        else:
            holds = (answer == "yes") != bool(NEGATIONS & set(words))
            for evidence, mentioned in ((colour, mentioned_colours), (shape, mentioned_shapes)):
                for word in mentioned:
                    (evidence.present if holds else evidence.absent).add(word)
    return colour.resolve(COLOURS, "colour"), shape.resolve(SHAPES, "shape")


def caption_for(colour: str, shape: str) -> str:
    return f"a {colour} {shape}"


def raw_records(split: str) -> list[dict]:
    """The package's ``train`` or ``test`` split grouped by image, in image-id order."""
    import easy_vqa

    if split == "train":
        texts, answers, image_ids = easy_vqa.get_train_questions()
        paths = easy_vqa.get_train_image_paths()
    elif split == "test":
        texts, answers, image_ids = easy_vqa.get_test_questions()
        paths = easy_vqa.get_test_image_paths()
    else:
        raise ValueError(f"easy-VQA has splits 'train' and 'test', not {split!r}")
    by_image: dict[int, dict] = {}
    for text, answer, image_id in zip(texts, answers, image_ids, strict=True):
        record = by_image.setdefault(image_id, {"questions": [], "answers": []})
        record["questions"].append(text)
        record["answers"].append(answer)
    records = []
    for image_id in sorted(set(paths) | set(by_image)):
        qa = by_image.get(image_id, {"questions": [], "answers": []})
        records.append({
            "image_id": f"easyvqa-{split}-{image_id}",
            "image_path": paths.get(image_id),
            "questions": qa["questions"],
            "answers": qa["answers"],
        })
    return records
