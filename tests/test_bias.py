import math

import pandas as pd
import pytest

from mbmlab import bias


def test_parse_caption():
    assert bias.parse_caption("a blue rectangle") == ("blue", "rectangle")
    assert bias.parse_caption("a blue") == ("blue", "")
    assert bias.parse_caption("") == ("", "")


def frame():
    return pd.DataFrame({"colour": ["red", "red", "red", "blue", ""], "shape": ["circle", "circle", "triangle",
                                                                                 "circle", "circle"]})


def test_cooccurrence_conditional_hand_worked():
    table = bias.cooccurrence(frame())
    assert table.loc["red", "circle"] == pytest.approx(2 / 3)
    assert table.loc["red", "triangle"] == pytest.approx(1 / 3)
    assert table.loc["blue", "circle"] == 1.0
    assert math.isnan(table.loc["green", "circle"])  # no green at all: undefined, not zero
    assert list(table.columns) == ["circle", "rectangle", "triangle", "star"]  # the one vocabulary (mbmlab.vocab)


def test_joint_and_total_variation_hand_worked():
    p = bias.joint_distribution(frame())  # red-circle 2/4, red-triangle 1/4, blue-circle 1/4
    assert p.values.sum() == pytest.approx(1.0)
    q = bias.joint_distribution(pd.DataFrame({"colour": ["red"], "shape": ["circle"]}))
    # |1/2 - 1| + 1/4 + 1/4 = 1, halved
    assert bias.total_variation(p, q) == pytest.approx(0.5)
    assert bias.total_variation(p, p) == 0.0
    with pytest.raises(ValueError, match="no record"):
        bias.joint_distribution(pd.DataFrame({"colour": [""], "shape": ["circle"]}))


def test_accuracy_by_group_and_gap():
    qa = pd.DataFrame({"colour": ["red", "red", "blue", ""], "correct": [True, False, True, False]})
    table = bias.accuracy_by(qa, "colour")
    assert table.to_dict("records") == [{"colour": "red", "accuracy": 0.5, "n": 2},
                                        {"colour": "blue", "accuracy": 1.0, "n": 1}]
    assert bias.accuracy_gap(table) == 0.5
