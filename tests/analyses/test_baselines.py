"""What each baseline takes away (mbmlab.baselines.ablate); training and answering run on the
tiny series in test_notebooks.py."""
import pytest
import torch

from mbmlab.analyses import baselines
from mbmlab.data.tasks import Example

EXAMPLES = [Example("vqa", 0, None, "what color is the shape?", "red", "colour"),
            Example("caption", 0, None, "", "a red circle"),
            Example("vqa", 1, None, "is there a circle?", "yes", "yes/no")]


def test_blind_sees_a_blank_image_and_the_question():
    pixels = torch.randn(2, 3, 8, 8)
    examples, blank = baselines.ablate("blind", EXAMPLES, pixels)
    assert [e.question for e in examples] == ["what color is the shape?", "is there a circle?"]  # VQA only
    assert blank.shape == pixels.shape and not blank.any()
    assert pixels.abs().sum() > 0  # the caller's tensor is untouched


def test_image_only_sees_the_image_and_no_question():
    pixels = torch.randn(2, 3, 8, 8)
    examples, same = baselines.ablate("image_only", EXAMPLES, pixels)
    assert {e.question for e in examples} == {baselines.HIDDEN_QUESTION}
    assert [e.target for e in examples] == ["red", "yes"] and same is pixels


def test_unknown_baseline_names_the_choices():
    with pytest.raises(ValueError, match="blind, image_only, random_init"):
        baselines.check(["blind", "deaf"])
    with pytest.raises(ValueError, match="unknown baseline 'deaf'"):
        baselines.ablate("deaf", EXAMPLES, None)


def test_only_blind_and_image_only_are_trained():
    with pytest.raises(ValueError, match="not a baseline trained like the fused model"):
        baselines.train_baseline(None, {}, "random_init", 1.0, None)


@pytest.mark.parametrize("kind", ["blind", "image_only"])
def test_answer_asks_the_model_with_the_input_taken_away(monkeypatch, kind):
    """What reaches generation: for blind, blank pixels whatever the pictures were; for
    image_only, the pictures as given and only the hidden question. (Mutation: ``answer`` calling
    ``generate`` on the examples and pixels it was given fails this test.)"""
    import mbmlab.metrics.generate

    seen = {}

    def fake_generate(model, processor, examples, pixels, desc="", **kwargs):
        seen.update(questions=[e.question for e in examples], pixels=pixels)
        return ["x"] * len(examples)

    monkeypatch.setattr(mbmlab.metrics.generate, "generate", fake_generate)  # what ``answer`` imports
    pixels = torch.randn(2, 3, 8, 8)
    trained = baselines.Baseline(kind, None, None, 1.0, 1, 0.0)
    assert baselines.answer(trained, EXAMPLES, pixels) == ["x", "x"]
    if kind == "blind":
        assert seen["questions"] == ["what color is the shape?", "is there a circle?"]
        assert not seen["pixels"].any() and seen["pixels"].shape == pixels.shape
    else:
        assert seen["questions"] == [baselines.HIDDEN_QUESTION] * 2 and torch.equal(seen["pixels"], pixels)
