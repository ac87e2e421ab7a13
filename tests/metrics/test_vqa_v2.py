"""VQA-v2 accuracy on hand-worked items."""
import pytest

from mbmlab.metrics.vqa_v2 import answer_accuracy, normalise, vqa_v2_accuracy

TEN = ["red"] * 2 + ["blue"] * 8


def test_two_of_ten_annotators_score_point_six():
    # leaving out one of the two "red" answers (2 of the 10 subsets) leaves 1 match → 1/3;
    # leaving out a "blue" (8 subsets) leaves 2 matches → 2/3; mean (2·1/3 + 8·2/3) / 10 = 0.6
    assert answer_accuracy("red", TEN) == pytest.approx(0.6)
    assert answer_accuracy("blue", TEN) == 1.0  # 7 or 8 matches in every subset: capped at 1
    assert answer_accuracy("green", TEN) == 0.0
    # one annotator: 9 subsets hold it (1/3), one does not (0) → 9/10 · 1/3 = 0.3
    assert answer_accuracy("pink", ["pink"] + ["blue"] * 9) == pytest.approx(0.3)
    # three annotators: subsets keep 2 (3 subsets, 2/3) or 3 (7 subsets, 1) → (3·2/3 + 7) / 10 = 0.9
    assert answer_accuracy("pink", ["pink"] * 3 + ["blue"] * 7) == pytest.approx(0.9)


def test_normalisation():
    assert normalise("  The Red.") == "red"
    assert normalise("Two") == "2" and normalise("a dog") == "dog"
    assert normalise("1,000") == "1000" and normalise("3.5") == "3.5"
    assert normalise("yes!") == "yes" and normalise("black/white") == "black white"
    assert normalise("dont") == "don't"


def test_one_reference_is_exact_match_and_named_so():
    assert vqa_v2_accuracy(["Blue.", "no", "a circle"], [["blue"], ["yes"], ["circle"]]) == \
        {"exact_match": pytest.approx(2 / 3)}
    assert vqa_v2_accuracy(["red", "blue"], [TEN, ["blue"]]) == {"vqa_accuracy": pytest.approx(0.8)}
    with pytest.raises(ValueError, match="2 predictions for 1"):
        vqa_v2_accuracy(["a", "b"], [["a"]])
