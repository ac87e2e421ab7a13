"""The cnn_bow classifier's vocabulary and forward pass (mbmlab.models.cnn_bow)."""
import pytest
import torch
from torch import nn

from mbmlab.models.cnn_bow import UNKNOWN, CnnBowVqa, Vocabulary, words


def test_words_are_lower_case_tokens_without_punctuation():
    assert words("What color is the Triangle?") == ["what", "color", "is", "the", "triangle"]


def test_bag_counts_words_and_puts_unseen_ones_in_the_unknown_slot():
    v = Vocabulary(["is there a red circle?", "what color is the circle?"], ["yes", "red", "no"])
    assert v.words[0] == UNKNOWN and v.answers == ["no", "red", "yes"]
    bag = v.bag(["circle circle zebra?"])
    assert bag[0, v.words.index("circle")] == 2 and bag[0, 0] == 1 and bag.sum() == 3
    assert v.answer_ids(["red", "purple"]).tolist() == [1, -1]  # an answer never trained on has no class


def test_vocabulary_refuses_no_questions():
    with pytest.raises(ValueError, match="needs training questions"):
        Vocabulary([], [])


class MeanColour(nn.Module):  # a stand-in tower: the image's mean colour as its pooled output
    def forward(self, pixel_values):
        from types import SimpleNamespace
        return SimpleNamespace(pooler_output=pixel_values.mean((2, 3)))


def test_each_question_reads_its_own_image():
    torch.manual_seed(0)
    model = CnnBowVqa(MeanColour(), 3, vocabulary=4, answers=2).eval()
    pixels = torch.randn(2, 3, 4, 4)
    bags = torch.eye(4)[:3]
    both = model(pixels, bags, torch.tensor([0, 1, 1]))
    alone = model(pixels[1:], bags[1:], torch.tensor([0, 0]))
    assert both.shape == (3, 2)
    torch.testing.assert_close(both[1:], alone)  # rows 1 and 2 read image 1 in both batches
    assert not torch.allclose(both[0], model(pixels[1:], bags[:1], torch.tensor([0]))[0])  # row 0 read image 0
