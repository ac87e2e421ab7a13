"""The classic VQA classifier, as a supervised reference for any VQA data: an image tower, a
bag-of-words question encoder and a classifier over the training answers.

Its shape is the published easy-VQA reference model (Zhou 2020, github.com/vzhou842/easy-VQA-keras,
``model.py``): the image through a CNN to a dense tanh vector, the question as a bag of words
through two dense tanh layers, the two multiplied element-wise, one dense tanh layer, a softmax
over the answers (which follows Antol et al. 2015's "deeper LSTM Q + norm I" in fusing by
product). Here the CNN is the run's own image tower architecture built from scratch, so the
baseline and the fused model see the same pixels through the same kind of network.
"""
from __future__ import annotations

import re

import torch
from torch import nn

from .connectors import pooled_image

UNKNOWN = "<unk>"  # the slot every word outside the training questions' vocabulary counts in


def words(question: str) -> list[str]:
    """Lower-case word tokens of a question (letters, digits and apostrophes)."""
    return re.findall(r"[a-z0-9']+", question.lower())


class Vocabulary:
    """Question words and answers seen in training; questions become word-count vectors."""

    def __init__(self, questions: list[str], answers: list[str]):
        if not questions:
            raise ValueError("the cnn_bow baseline needs training questions; the split has none")
        self.words = [UNKNOWN] + sorted({w for q in questions for w in words(q)})
        self.answers = sorted(set(answers))
        self._word = {w: i for i, w in enumerate(self.words)}
        self._answer = {a: i for i, a in enumerate(self.answers)}

    def bag(self, questions: list[str]) -> torch.Tensor:
        """(N, vocabulary) word counts; words never seen in training count as ``UNKNOWN``."""
        out = torch.zeros(len(questions), len(self.words))
        for row, question in enumerate(questions):
            for w in words(question):
                out[row, self._word.get(w, 0)] += 1
        return out

    def answer_ids(self, answers: list[str]) -> torch.Tensor:
        """Class ids; an answer never seen in training gets -1 (no class can be right for it)."""
        return torch.tensor([self._answer.get(a, -1) for a in answers])


class CnnBowVqa(nn.Module):
    """(pixel_values (M, 3, H, W), bags (N, V), image_index (N,)) → answer logits (N, classes);
    each image is encoded once and shared by its questions through ``image_index``."""

    def __init__(self, tower: nn.Module, feature_dim: int, vocabulary: int, answers: int, hidden: int = 128):
        super().__init__()
        self.tower = tower
        self.image = nn.Sequential(nn.LayerNorm(feature_dim), nn.Linear(feature_dim, hidden), nn.Tanh())
        self.question = nn.Sequential(nn.Linear(vocabulary, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, answers))

    def forward(self, pixel_values: torch.Tensor, bags: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
        images = self.image(pooled_image(self.tower(pixel_values=pixel_values)))
        return self.head(torch.index_select(images, 0, image_index) * self.question(bags))
