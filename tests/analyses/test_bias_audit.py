import math

import numpy as np
import pandas as pd
import pytest

from mbmlab.analyses import bias_audit
from mbmlab.data.card import objects_frame


def test_parse_caption_gives_every_object():
    assert bias_audit.parse_caption("a blue rectangle") == [("blue", "rectangle")]
    assert bias_audit.parse_caption("a large red circle and a small blue star") == [("red", "circle"), ("blue", "star")]
    assert bias_audit.parse_caption("a small red circle, a large green triangle and a small brown rectangle") == [
        ("red", "circle"), ("green", "triangle"), ("brown", "rectangle")]
    assert bias_audit.parse_caption("a blue") == [] and bias_audit.parse_caption("") == []
    assert bias_audit.parse_caption("a circle") == [("", "circle")]


def test_objects_come_from_the_data_stars_and_two_object_scenes_included():
    import datasets

    rows = {"image_id": ["s-0", "e-0"], "source": ["scenes", "easyvqa"],
            "objects": [[{"shape": "star", "colour": "red", "size": "large", "x": 0.2, "y": 0.5},
                         {"shape": "circle", "colour": "teal", "size": "small", "x": 0.7, "y": 0.5}],
                        [{"shape": "triangle", "colour": "gray", "size": "", "x": -1.0, "y": -1.0}]]}
    frame = objects_frame(datasets.Dataset.from_dict(rows))
    assert frame[["image_id", "colour", "shape"]].values.tolist() == [
        ["s-0", "red", "star"], ["s-0", "teal", "circle"], ["e-0", "gray", "triangle"]]
    assert bias_audit.vocabulary(frame, column="shape") == ("circle", "triangle", "star")
    table = bias_audit.cooccurrence(frame, "shape", "colour")
    assert table.loc["star", "red"] == 1.0 and "star" in table.index  # the star is not dropped


def frame():
    return pd.DataFrame({"colour": ["red", "red", "red", "blue", ""], "shape": ["circle", "circle", "triangle",
                                                                                 "circle", "circle"]})


def test_cooccurrence_conditional_hand_worked():
    table = bias_audit.cooccurrence(frame())
    assert table.loc["red", "circle"] == pytest.approx(2 / 3)
    assert table.loc["red", "triangle"] == pytest.approx(1 / 3)
    assert table.loc["blue", "circle"] == 1.0
    assert list(table.columns) == ["circle", "triangle"]  # the values the data holds, in mbmlab.vocab's order
    wide = bias_audit.cooccurrence(frame(), index=["red", "blue", "green"], columns=["circle", "triangle", "star"])
    assert math.isnan(wide.loc["green", "circle"])  # no green at all: undefined, not zero
    assert wide.loc["red", "star"] == 0.0


def test_joint_and_total_variation_hand_worked():
    p = bias_audit.joint_distribution(frame())  # red-circle 2/4, red-triangle 1/4, blue-circle 1/4
    assert p.values.sum() == pytest.approx(1.0)
    q = bias_audit.joint_distribution(pd.DataFrame({"colour": ["red"], "shape": ["circle"]}), index=p.index,
                                columns=p.columns)
    # |1/2 - 1| + 1/4 + 1/4 = 1, halved
    assert bias_audit.total_variation(p, q) == pytest.approx(0.5)
    assert bias_audit.total_variation(p, p) == 0.0
    with pytest.raises(ValueError, match="no record"):
        bias_audit.joint_distribution(pd.DataFrame({"colour": [""], "shape": ["circle"]}))


def test_accuracy_by_group_and_gap():
    qa = pd.DataFrame({"colour": ["red", "red", "blue", ""], "correct": [True, False, True, False]})
    table = bias_audit.accuracy_by(qa, "colour")
    assert table.to_dict("records") == [{"colour": "red", "accuracy": 0.5, "n": 2},
                                        {"colour": "blue", "accuracy": 1.0, "n": 1}]
    assert bias_audit.accuracy_gap(table) == 0.5


def test_bias_amplification_zhao_hand_worked():
    # outputs cook, drive × groups man, woman. Training: cook 30/70 → b = 0.3, 0.7; drive 80/20 → 0.8, 0.2.
    # Predicted: cook 20/80 → 0.2, 0.8; drive 90/10 → 0.9, 0.1. Pairs above 1/2: (cook, woman) +0.1,
    # (drive, man) +0.1; mean over the two outputs: (0.1 + 0.1) / 2 = 0.1.
    train, predicted = [[30, 70], [80, 20]], [[20, 80], [90, 10]]
    assert bias_audit.bias_amplification(train, predicted) == pytest.approx(0.1)
    assert bias_audit.bias_amplification(train, train) == 0.0
    # three groups, one output: training 50/30/20 → only b = 0.5 > 1/3; predicted 40/40/20 → 0.4: BA = −0.1
    assert bias_audit.bias_amplification([[50, 30, 20]], [[40, 40, 20]]) == pytest.approx(-0.1)
    # counts are normalised per output: scaling the predictions changes nothing
    assert bias_audit.bias_amplification(train, np.array(predicted) * 7) == pytest.approx(0.1)


def test_bias_amplification_leaves_out_outputs_without_counts_and_says_so():
    with pytest.warns(UserWarning, match=r"outputs \[1\]"):
        assert bias_audit.bias_amplification([[30, 70], [0, 0]], [[20, 80], [5, 5]]) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="same shape|one shape"):
        bias_audit.bias_amplification([[1, 2]], [[1, 2, 3]])


# Wang & Russakovsky's measure on a case small enough to work by hand: one attribute (red),
# two tasks (circle, square), four training and four test items.
A_TRAIN = [[1], [1], [0], [0]]
T_TRAIN = [[1, 0], [1, 0], [0, 1], [1, 0]]
A_TEST = [[1], [1], [0], [0]]
T_TEST = [[1, 0], [0, 1], [0, 1], [1, 0]]


def test_directional_bias_amplification_a_to_t_hand_worked():
    # y: P(red, circle) = 2/4 > P(red)·P(circle) = 1/2 · 3/4 = 3/8 → 1; P(red, square) = 0 < 1/2 · 1/4 → 0.
    # Predicted circle for both red test items: Δ(red, circle) = 2/2 − 1/2 = 0.5, Δ(red, square) = 0 − 1/2 = −0.5.
    # BiasAmp = ½ [1 · 0.5 + (1 − 0) · (−(−0.5))] = 0.5
    predicted = [[1, 0], [1, 0], [0, 1], [0, 1]]
    assert bias_audit.directional_bias_amplification(A_TRAIN, T_TRAIN, A_TEST, T_TEST, predicted, "A->T") == \
        pytest.approx(0.5)
    # predictions equal to the truth amplify nothing
    assert bias_audit.directional_bias_amplification(A_TRAIN, T_TRAIN, A_TEST, T_TEST, T_TEST, "A->T") == 0.0


def test_directional_bias_amplification_t_to_a_hand_worked():
    # Â = red, not, not, red. Circle test items (0, 3): P(Â=1 | circle) = 1, P(A=1 | circle) = 1/2 → Δ = 0.5;
    # square items (1, 2): P(Â=1 | square) = 0, P(A=1 | square) = 1/2 → Δ = −0.5.
    # BiasAmp = ½ [1 · 0.5 + 1 · 0.5] = 0.5
    predicted = [[1], [0], [0], [1]]
    assert bias_audit.directional_bias_amplification(A_TRAIN, T_TRAIN, A_TEST, T_TEST, predicted, "T->A") == \
        pytest.approx(0.5)
    with pytest.raises(ValueError, match="direction"):
        bias_audit.directional_bias_amplification(A_TRAIN, T_TRAIN, A_TEST, T_TEST, predicted, "sideways")
    with pytest.raises(ValueError, match="shaped like A_test"):
        bias_audit.directional_bias_amplification(A_TRAIN, T_TRAIN, A_TEST, T_TEST, T_TEST, "T->A")


def test_bias_measures_with_bootstrap_intervals():
    rng = np.random.default_rng(0)
    shapes = rng.choice(["circle", "square"], 400)
    truth = np.where(rng.random(400) < 0.5, "red", "blue")
    predicted = np.where(shapes == "circle", "red", truth)  # the model says red for every circle
    train = bias_audit.counts(["circle"] * 90 + ["circle"] * 10 + ["square"] * 50 + ["square"] * 50,
                        ["red"] * 90 + ["blue"] * 10 + ["red"] * 50 + ["blue"] * 50,
                        ["circle", "square"], ["red", "blue"])

    def statistic(idx):
        return bias_audit.bias_amplification(train, bias_audit.counts(shapes[idx], predicted[idx], ["circle", "square"],
                                                          ["red", "blue"]))

    out = bias_audit.with_interval("bias/ba", statistic, 400)
    # training b(circle, red) = 0.9 > 1/2; predicted b(circle, red) = 1 → +0.1 for circles; squares
    # are 50/50 in training, nothing is favoured: BA = (0.1 + 0) / 2 = 0.05 exactly
    assert out["bias/ba"] == pytest.approx(0.05)
    assert out["bias/ba/ci95_low"] == pytest.approx(0.05) and out["bias/ba/ci95_high"] == pytest.approx(0.05)
    # every circle predicted red in every resample: no spread. With red for only some circles the
    # value moves with the resampled items and the interval opens around it
    predicted = np.where((shapes == "circle") & (rng.random(400) < 0.6), "red", truth)
    out = bias_audit.with_interval("bias/ba", statistic, 400)
    assert out["bias/ba/ci95_low"] < out["bias/ba"] < out["bias/ba/ci95_high"]


def test_attribute_items_read_the_object_from_the_question_or_the_image():
    qa = pd.DataFrame([
        {"question": "what color is the circle?", "answer": "red", "prediction": "blue", "question_type": "colour",
         "image_id": "s", "colour": "", "shape": ""},  # two-object scene: the question names the shape
        {"question": "what shape is the teal object?", "answer": "star", "prediction": "star",
         "question_type": "shape", "image_id": "s", "colour": "", "shape": ""},
        {"question": "what is the color of the shape?", "answer": "gray", "prediction": "gray",
         "question_type": "colour", "image_id": "e", "colour": "gray", "shape": "triangle"},  # one object
        {"question": "what color is the shape?", "answer": "red", "prediction": "red", "question_type": "colour",
         "image_id": "m", "colour": "", "shape": ""},  # several objects, none named: left out
        {"question": "is there a red shape?", "answer": "yes", "prediction": "no", "question_type": "yes/no",
         "image_id": "e", "colour": "gray", "shape": "triangle"},
    ])
    items = bias_audit.attribute_items(qa, ("circle", "triangle", "star"), ("red", "blue", "gray", "teal"))
    assert items[["kind", "shape", "colour", "predicted"]].values.tolist() == [
        ["colour", "circle", "red", "blue"], ["shape", "star", "teal", "star"], ["colour", "triangle", "gray", "gray"]]
    train = pd.DataFrame({"shape": ["circle", "circle", "triangle", "star"], "colour": ["red", "red", "gray", "teal"]})
    metrics = bias_audit.amplification_metrics(train, items, ("circle", "triangle", "star"), ("red", "blue", "gray", "teal"))
    # colour answers: circle → blue (training b(circle, red) = 1 → predicted 0: −1), triangle → gray
    # (b = 1 → 1: 0); mean over the two shapes: −0.5
    assert metrics["bias/amplification"] == pytest.approx(-0.5)
    assert {"bias/directional_amplification/A->T", "bias/directional_amplification/T->A"} <= set(metrics)


def test_a_model_that_names_no_colour_leaves_zhao_undefined_instead_of_failing_the_study():
    """Zhao's amplification needs a colour answer for some shape; a degenerate model (tiny 07 arms
    trained 2 epochs answered none) used to raise and end the whole bias study. Now the measure is
    left out with a warning, the directional ones (defined) stay, and a resample that misses every
    colour answer is counted, not turned into a NaN bound. Mutation: ``zhao`` calling
    bias_amplification unguarded → ValueError here."""
    shapes, colours = ("circle", "triangle"), ("red", "blue")
    train = pd.DataFrame({"shape": ["circle", "triangle"], "colour": ["red", "blue"]})
    items = pd.DataFrame({"kind": "colour", "shape": ["circle", "triangle"] * 10, "colour": ["red", "blue"] * 10,
                          "predicted": ["yes"] * 20, "image_id": [f"i{k}" for k in range(20)]})
    with pytest.warns(UserWarning, match="bias/amplification is undefined"):
        metrics = bias_audit.amplification_metrics(train, items, shapes, colours)
    assert "bias/amplification" not in metrics and "bias/directional_amplification/A->T" in metrics
    items.loc[0, "predicted"] = "red"  # one colour answer in 20 images: some resamples miss it
    metrics = bias_audit.amplification_metrics(train, items, shapes, colours)
    assert metrics["bias/amplification"] == pytest.approx(0.0)  # circle → red, as trained; triangle undefined
    assert 0 < metrics["bias/amplification/undefined_resamples"] < 200
    assert all(np.isfinite(v) for v in metrics.values())


def test_directional_y_is_against_independence_not_mere_co_occurrence():
    # training: (red, circle), (red, square), (blue, circle), (blue, circle).
    # P(red, circle) = 1/4 < P(red)·P(circle) = 1/2 · 3/4 = 3/8 → y = 0, although they co-occur;
    # P(red, square) = 1/4 > 1/2 · 1/4 = 1/8 → y = 1.
    # Test: red items are circle and square, both predicted square: Δ(red, circle) = 0 − 1/2 = −0.5,
    # Δ(red, square) = 1 − 1/2 = 0.5. BiasAmp = ½ [(1 − 0)·(−(−0.5)) + 1·0.5] = 0.5
    A_train, T_train = [[1], [1], [0], [0]], [[1, 0], [0, 1], [1, 0], [1, 0]]
    A_test, T_test = [[1], [1], [0], [0]], [[1, 0], [0, 1], [1, 0], [0, 1]]
    predicted = [[0, 1], [0, 1], [1, 0], [0, 1]]
    assert bias_audit.directional_bias_amplification(A_train, T_train, A_test, T_test, predicted, "A->T") == \
        pytest.approx(0.5)


# ---------------------------------------------------------------- 05's sections on hand tables

def test_group_accuracy_section_by_hand():
    # colour: red 2/2 right, blue 0/1 → gap 1.0; shape: circle 1/2, star 1/1 → gap 0.5 (the "" row is left out)
    qa = pd.DataFrame({"colour": ["red", "red", "blue", ""], "shape": ["circle", "star", "circle", ""],
                       "answer": ["yes", "red", "no", "2"], "prediction": ["Yes", "red", "yes", "2"],
                       "majority": ["yes", "yes", "yes", "yes"]})
    fig, lines, gaps = bias_audit.group_accuracy_section(qa)
    assert gaps == {"bias/vqa_accuracy_gap/colour": 1.0, "bias/vqa_accuracy_gap/shape": 0.5}
    assert fig is not None and len(lines) == 3
    blank = qa.assign(colour="", shape="")
    assert bias_audit.group_accuracy_section(blank)[1][0].startswith("note: the images carry no colour")


def test_caption_section_counts_named_objects_and_the_distance_by_hand():
    objects = {"train": pd.DataFrame({"image_id": ["t"], "colour": ["red"], "shape": ["circle"]}),
               "test": pd.DataFrame({"image_id": ["a", "b", "c"], "colour": ["red", "blue", "red"],
                                     "shape": ["circle", "star", "star"]})}
    captions = pd.DataFrame({"image_id": ["a", "b"], "prediction": ["a red circle", "a star"]})
    fig, lines, metrics = bias_audit.caption_section(captions, objects, ("red", "blue"), ("circle", "star"))
    # the captioned images hold 2 objects; the captions name 2, one with a colour and a shape
    assert metrics["bias/caption_object_rate"] == 0.5
    # joint P(colour, shape): captions {red circle: 1} (the colourless star is not in a colour row);
    # test objects {red circle: 1/2, blue star: 1/2} → total variation 1/2
    assert metrics["bias/caption_joint_tv_distance"] == pytest.approx(0.5)
    assert lines[0].startswith("2 objects on 2 captioned test images") and fig is not None
