"""Procedural scenes: 1–3 coloured shapes per image, with a caption, QA pairs and a bias knob.

Each image is drawn from its own ``random.Random`` seeded by (seed, split, index), so the same
seed gives byte-identical images, and a larger dataset starts with the smaller one's images.

The bias knob: for each ``shape:colour`` pair in ``bias_pairs`` the *training* split has
P(colour | shape) = ``bias_strength`` (the other colours share the rest evenly); validation and
test are drawn balanced, every colour equally likely for every shape. Colours and shapes are
distinct within a scene, so every question about "the circle" or "the red shape" has one answer.
"""
from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

from . import attributes
from .attributes import COLOURS, SHAPES

SIZES = dict(zip(attributes.SIZES, (0.10, 0.16)))  # half-width as a fraction of the image side
RGB = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "black": (20, 20, 20),
       "gray": (128, 128, 128), "teal": (0, 128, 128), "brown": (130, 80, 30), "yellow": (235, 205, 30)}
NUMBERS = {1: "one", 2: "two", 3: "three"}
QUESTION_TYPES = ("count", "colour", "shape", "existence", "spatial")
SUPERSAMPLE = 4  # draw at 4× and downsample, so edges are anti-aliased


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    x: float  # centre, as a fraction of the image side
    y: float

    @property
    def half(self) -> float:
        return SIZES[self.size]

    def left_of(self, other: "SceneObject") -> bool:
        """Unambiguously left: the horizontal extents do not overlap."""
        return self.x + self.half < other.x - other.half

    def phrase(self) -> str:
        return f"a {self.size} {self.colour} {self.shape}"


def _colours(rng: random.Random, shapes: list[str], bias: dict[str, str], strength: float) -> list[str]:
    """Distinct colours; biased shapes first, so their P(colour | shape) is exactly ``strength``."""
    chosen: dict[int, str] = {}
    order = sorted(range(len(shapes)), key=lambda i: shapes[i] not in bias)
    for i in order:
        free = [c for c in COLOURS if c not in chosen.values()]
        target = bias.get(shapes[i])
        if target is not None:
            others = [c for c in free if c != target]
            chosen[i] = target if rng.random() < strength else rng.choice(others)
        else:
            chosen[i] = rng.choice(free)
    return [chosen[i] for i in range(len(shapes))]


def _place(rng: random.Random, sizes: list[str]) -> list[tuple[float, float]]:
    """Centres with no two bounding boxes overlapping (rejection sampling, then a fixed row)."""
    for _ in range(200):
        centres = []
        for size in sizes:
            h = SIZES[size] + 0.02
            centres.append((rng.uniform(h, 1 - h), rng.uniform(h, 1 - h)))
        boxes = [(x, y, SIZES[s]) for (x, y), s in zip(centres, sizes)]
        if all(abs(a[0] - b[0]) > a[2] + b[2] or abs(a[1] - b[1]) > a[2] + b[2]
               for i, a in enumerate(boxes) for b in boxes[i + 1:]):
            return centres
    return _grid_places(rng, len(sizes))


def _grid_places(rng: random.Random, n: int) -> list[tuple[float, float]]:
    """Fallback that always fits: distinct cells of a 2×2 grid, jittered by at most 0.04, so two
    centres are at least 0.42 apart on one axis (> 2 × the largest half-width, 0.16)."""
    cells = rng.sample([(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)], n)
    return [(x + rng.uniform(-0.04, 0.04), y + rng.uniform(-0.04, 0.04)) for x, y in cells]


def sample_scene(rng: random.Random, bias: dict[str, str], strength: float) -> list[SceneObject]:
    n = rng.choice((1, 2, 3))
    shapes = rng.sample(SHAPES, n)
    colours = _colours(rng, shapes, bias, strength)
    sizes = [rng.choice(tuple(SIZES)) for _ in shapes]
    centres = _place(rng, sizes)
    objects = [SceneObject(s, c, z, round(x, 4), round(y, 4))
               for s, c, z, (x, y) in zip(shapes, colours, sizes, centres)]
    return sorted(objects, key=lambda o: o.x)  # left to right, the order the caption uses


def _draw_shape(draw: ImageDraw.ImageDraw, obj: SceneObject, side: int) -> None:
    cx, cy, h = obj.x * side, obj.y * side, obj.half * side
    fill = RGB[obj.colour]
    if obj.shape == "circle":
        draw.ellipse((cx - h, cy - h, cx + h, cy + h), fill=fill)
    elif obj.shape == "rectangle":
        draw.rectangle((cx - h, cy - 0.65 * h, cx + h, cy + 0.65 * h), fill=fill)
    elif obj.shape == "triangle":
        draw.polygon([(cx, cy - h), (cx + h, cy + h), (cx - h, cy + h)], fill=fill)
    elif obj.shape == "star":
        points = [(cx + (h if k % 2 == 0 else 0.45 * h) * math.sin(k * math.pi / 5),
                   cy - (h if k % 2 == 0 else 0.45 * h) * math.cos(k * math.pi / 5)) for k in range(10)]
        draw.polygon(points, fill=fill)
    else:
        raise ValueError(f"unknown shape {obj.shape!r}")


def render(objects: list[SceneObject], size: int) -> bytes:
    big = size * SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for obj in objects:
        _draw_shape(draw, obj, big)
    buffer = io.BytesIO()
    canvas.resize((size, size), Image.Resampling.BOX).save(buffer, format="PNG")
    return buffer.getvalue()


def caption(objects: list[SceneObject]) -> str:
    if len(objects) == 2 and objects[0].left_of(objects[1]):
        return f"{objects[0].phrase()} left of {objects[1].phrase()}"
    phrases = [o.phrase() for o in objects]
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def questions(objects: list[SceneObject], rng: random.Random) -> list[tuple[str, str, str]]:
    """(question, answer, type): count; colour and shape of each object; existence; spatial."""
    qa = [("how many shapes are there?", NUMBERS[len(objects)], "count")]
    for obj in objects:
        qa.append((f"what color is the {obj.shape}?", obj.colour, "colour"))
        qa.append((f"what shape is the {obj.colour} object?", obj.shape, "shape"))
    present = {(o.colour, o.shape) for o in objects}
    if rng.random() < 0.5:
        colour, shape = rng.choice(sorted(present))
    else:
        colour, shape = rng.choice([(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present])
    qa.append((f"is there a {colour} {shape}?", "yes" if (colour, shape) in present else "no", "existence"))
    pairs = [(a, b) for a in objects for b in objects if a.left_of(b)]
    if pairs:
        a, b = rng.choice(pairs)
        if rng.random() < 0.5:
            a, b, answer = b, a, "no"
        else:
            answer = "yes"
        qa.append((f"is the {a.shape} left of the {b.shape}?", answer, "spatial"))
    return qa


def scene_record(seed: int, split: str, index: int, image_size: int, bias: dict[str, str],
                 strength: float) -> dict:
    """One image's record, ready for the cleaner; the bias applies to the train split only."""
    rng = random.Random(f"scenes/{seed}/{split}/{index}")
    objects = sample_scene(rng, bias if split == "train" else {}, strength)
    qa = questions(objects, rng)
    return {
        "image_id": f"scenes-{split}-{index}", "source": "scenes",
        "image": render(objects, image_size), "caption": caption(objects),
        "colour": objects[0].colour if len(objects) == 1 else "",
        "shape": objects[0].shape if len(objects) == 1 else "",
        "objects": [{"shape": o.shape, "colour": o.colour, "size": o.size, "x": o.x, "y": o.y}
                    for o in objects],
        "questions": [q for q, _, _ in qa], "answers": [a for _, a, _ in qa],
        "question_types": [t for _, _, t in qa],
    }
