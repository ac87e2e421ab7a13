import io
import random
from collections import Counter

import pytest
from PIL import Image

from mbmlab.data import attributes, scenes


def test_bias_pairs_are_parsed_and_checked():
    assert attributes.parse_bias_pairs(["circle:red", " star : blue "]) == {"circle": "red", "star": "blue"}
    for bad in (["circle"], ["circle:purple"], ["hexagon:red"], ["circle:red", "circle:blue"],
                ["circle:red", "star:red"]):
        with pytest.raises(attributes.BiasSpecError):
            attributes.parse_bias_pairs(bad)


def test_same_seed_same_bytes_other_seed_other_image():
    a = scenes.scene_record(0, "train", 5, 64, {}, 0.0)
    assert a == scenes.scene_record(0, "train", 5, 64, {}, 0.0)
    assert a["image"] != scenes.scene_record(1, "train", 5, 64, {}, 0.0)["image"]


@pytest.mark.parametrize("index", range(40))
def test_answers_agree_with_the_scene(index):
    record = scenes.scene_record(3, "test", index, 64, {}, 0.0)
    objects = record["objects"]
    shapes = {o["shape"]: o for o in objects}
    colours = {o["colour"]: o for o in objects}
    assert len(shapes) == len(colours) == len(objects)  # distinct, so every question has one answer
    image = Image.open(io.BytesIO(record["image"])).convert("RGB")
    for o in objects:  # the object's centre pixel has the object's colour
        pixel = image.getpixel((int(o["x"] * 64), int(o["y"] * 64)))
        assert max(abs(p - q) for p, q in zip(pixel, scenes.RGB[o["colour"]])) <= 40, o
    boxes = [(o["x"], o["y"], scenes.SIZES[o["size"]]) for o in objects]
    for i, a in enumerate(boxes):  # no two objects overlap
        for b in boxes[i + 1:]:
            assert abs(a[0] - b[0]) > a[2] + b[2] or abs(a[1] - b[1]) > a[2] + b[2]
    for q, a, t in zip(record["questions"], record["answers"], record["question_types"], strict=True):
        words = q.rstrip("?").split()
        if t == "count":
            assert a == scenes.NUMBERS[len(objects)]
        elif t == "colour":
            assert shapes[words[-1]]["colour"] == a
        elif t == "shape":
            assert colours[words[-2]]["shape"] == a
        elif t == "existence":
            assert (a == "yes") == ((words[-2], words[-1]) in {(o["colour"], o["shape"]) for o in objects})
        elif t == "spatial":
            first, second = shapes[words[2]], shapes[words[-1]]
            left = scenes.SceneObject(**first).left_of(scenes.SceneObject(**second))
            assert (a == "yes") == left
        else:
            raise AssertionError(t)
    assert record["caption"].startswith("a ") and all(o["shape"] in record["caption"] for o in objects)


def test_bias_knob_sets_train_conditional_and_leaves_test_balanced():
    bias = {"circle": "red"}

    def p_red_given_circle(split, n):
        colours = Counter(o["colour"] for i in range(n)
                          for o in scenes.scene_record(0, split, i, 32, bias, 0.8)["objects"] if o["shape"] == "circle")
        return colours["red"] / sum(colours.values()), sum(colours.values())

    p_train, n_train = p_red_given_circle("train", 1500)
    p_test, n_test = p_red_given_circle("test", 1500)
    assert abs(p_train - 0.8) < 3 * (0.8 * 0.2 / n_train) ** 0.5 + 0.01
    assert abs(p_test - 1 / 8) < 3 * (1 / 8 * 7 / 8 / n_test) ** 0.5 + 0.01


@pytest.mark.parametrize("place", [lambda rng: scenes._place(rng, ["large"] * 3),
                                   lambda rng: scenes._grid_places(rng, 3)])
def test_placement_never_overlaps(place):
    rng = random.Random(0)
    for _ in range(200):
        centres = place(rng)
        for i, a in enumerate(centres):
            for b in centres[i + 1:]:
                gap = 2 * scenes.SIZES["large"]
                assert abs(a[0] - b[0]) > gap or abs(a[1] - b[1]) > gap
