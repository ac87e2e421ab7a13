"""The attribute vocabulary every part of the workbench shares (colours, shapes and sizes), and
the bias pairs (``shape:colour``) the scenes can be made to over-represent. No torch, no PIL.

easy-VQA draws three of the shapes; the procedural scenes draw all four. Code that needs the
attributes of a particular dataset reads them from the dataset's own columns; these tuples fix
the order in which tables and plots list them.
"""
COLOURS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
SHAPES = ("circle", "rectangle", "triangle", "star")
EASYVQA_SHAPES = SHAPES[:3]  # easy-VQA has no star
SIZES = ("small", "large")


class BiasSpecError(ValueError):
    """A ``bias_pairs`` entry that is not ``shape:colour`` from the vocabularies."""


def parse_bias_pairs(pairs: list[str]) -> dict[str, str]:
    """``["circle:red"]`` → ``{"circle": "red"}``; each shape and each colour at most once."""
    out: dict[str, str] = {}
    for pair in pairs:
        shape, sep, colour = pair.partition(":")
        shape, colour = shape.strip(), colour.strip()
        if not sep or shape not in SHAPES or colour not in COLOURS:
            raise BiasSpecError(f"bias pair {pair!r} must be shape:colour with shape in {SHAPES} "
                                f"and colour in {COLOURS}")
        if shape in out or colour in out.values():
            raise BiasSpecError(f"bias pair {pair!r} repeats a shape or colour of another pair")
        out[shape] = colour
    return out


# Mirroring an image left to right (the flip augmentation) keeps the answer of every question
# type the drawn sources ask — every shape they draw is mirror-symmetric — except the scenes'
# spatial questions, whose yes and no trade places ("is the circle left of the square?").
MIRROR_KEEPS = ("count", "colour", "shape", "existence", "yes/no")
MIRROR_SWAPS = {"spatial": {"yes": "no", "no": "yes"}}


def mirrored_answer(answer: str, question_type: str) -> str | None:
    """The answer to the same question about the image mirrored left to right; None where no rule
    is known (a user's data, an untyped question): such an image must not be mirrored."""
    if question_type in MIRROR_KEEPS:
        return answer
    return MIRROR_SWAPS.get(question_type, {}).get(answer)
