"""03's stage 0 for the ``attend`` connector: the image tower and the connector learn to read an
image *for a question* from an answer classifier, before the GPT sees them.

Why a stage of its own (measured on a scenes run, docs/results.md §"Why the scenes are not read"):
trained through the GPT alone, the connector's heads stayed on the grid's plain mean for 12
epochs and the fused model answered colour and shape at chance; the same tower and connector
under a classifier head over the training answers (the supervised reference's objective,
``mbmlab.training.cnn_bow``) learn where to look within ten epochs, and the GPT then learns to
say what they read within its usual stages. This is the image side's counterpart of 02's CTC
pretraining of the audio encoder (an encoder taught by a head of its own before it is joined to
the decoder). The classifier head is thrown away; only the tower and the connector keep what
they learned. Early stopping on the validation split's VQA rows; the test split is never read.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from ..data.attributes import mirrored_answer
from ..data.tasks import Example
from ..models.cnn_bow import Vocabulary
from ..models.processing_mbm import pad
from .cnn_bow import Rows, batches, early_stopped


@dataclass
class Reading:
    epochs: int  # epochs run, over all restarts (the best one's weights are kept)
    best_epoch: int  # within the kept restart
    steps: int
    seconds: float
    validation_exact_match: float  # the classifier's, at the best epoch
    history: pd.DataFrame  # per restart and epoch: train loss, validation exact match
    by_type: dict[str, float]  # the best epoch's validation exact match per question type
    restart: int = 0  # which restart was kept (its seed: seed + restart)

    def metrics(self) -> dict[str, float]:
        """What 03 logs: ``fuse/stage0_epochs``, ``fuse/stage0_validation_exact_match`` and the
        same per question type (``…/<type>``)."""
        name = "fuse/stage0_validation_exact_match"
        return {"fuse/stage0_epochs": self.epochs, "fuse/stage0_restart": self.restart,
                name: self.validation_exact_match} | {
            f"{name}/{kind}": value for kind, value in self.by_type.items()}


def prompts(processor, examples: list[Example]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) of the VQA rows' prompts as the fused model reads them, right-padded."""
    padded = pad(processor.prompt_ids([processor.prompt("vqa", e.question) for e in examples]),
                 processor.tokenizer.pad_token_id, side="right")
    return padded["input_ids"], padded["attention_mask"]


MIRROR_SEED = 1_000_003  # the mirror's generator: a stream apart from the batch order's (same seed otherwise)


@dataclass
class Mirror:
    """Stage 0's flip augmentation: each training image mirrored left to right with probability
    one half per batch, its answers changed as the mirror changes them
    (``mbmlab.data.attributes.mirrored_answer``: a spatial question's yes and no trade places).
    An image with a question that has no mirror rule (a user's data), or whose mirrored answer
    was never a training answer, is never mirrored."""

    answers: torch.Tensor  # per row: its answer id on the mirrored image
    allowed: torch.Tensor  # per image of the pixel tensor: may be mirrored
    generator: torch.Generator

    @classmethod
    def of(cls, examples: list[Example], rows: Rows, vocabulary: Vocabulary, images: int, seed: int) -> "Mirror":
        mirrored = [mirrored_answer(e.target, e.question_type) for e in examples]
        answers = vocabulary.answer_ids([a if a is not None else "" for a in mirrored])
        allowed = torch.ones(images, dtype=torch.bool)
        allowed[rows.images[answers < 0]] = False
        return cls(answers, allowed, torch.Generator().manual_seed(seed))

    def __call__(self, pixels: torch.Tensor, chosen: torch.Tensor, row_index: torch.Tensor, image_index: torch.Tensor,
                 answers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch's (pixels, answer ids) with some images mirrored: ``pixels`` are ``chosen``'s."""
        flip = (torch.rand(len(chosen), generator=self.generator) < 0.5) & self.allowed[chosen]
        pixels = torch.where(flip.view(-1, 1, 1, 1), pixels.flip(-1), pixels)
        return pixels, torch.where(flip[image_index], self.answers[row_index], answers)


class Reader(nn.Module):
    """The model's tower and attend connector with a classifier over the answers on top."""

    def __init__(self, model, answers: int, hidden: int = 256):
        super().__init__()
        self.base = model.model
        attend = self.base.image_projector.attend
        mix = getattr(self.base.image_projector, "mix", None)
        if mix is not None:  # its hidden layer is the connector's mixing layer, which the GPT reads after
            self.head = nn.Sequential(mix[0], mix[1], nn.Linear(mix[0].out_features, answers))
        else:
            self.head = nn.Sequential(nn.Linear(attend.heads * attend.dim, hidden), nn.GELU(), nn.Linear(hidden, answers))

    def forward(self, pixel_values, ids, mask, image_index):
        embeds, lengths = self.base.image_prompts(ids, mask)  # the connector's own word table
        grid = self.base.image_grid(pixel_values, image_index)
        return self.head(self.base.image_projector.attend(grid, embeds, lengths).flatten(1))


def _correct(reader, rows, ids, mask, pixels) -> torch.Tensor:
    """Whether the classifier answers each row right (evaluation mode)."""
    reader.base.vision_tower.eval()
    right = torch.zeros(len(rows), dtype=torch.bool)
    with torch.no_grad():
        for chosen, row_index, image_index in batches(rows, 64):
            predicted = reader(pixels[chosen], ids[row_index], mask[row_index], image_index).argmax(-1)
            right[row_index] = predicted == rows.answers[row_index]
    return right


def attend_reader(model) -> list[nn.Module]:
    """What stage 0 teaches inside the image projector: the attend connector, and the first layer
    of its mixing layer where it has one; empty without an attend connector."""
    projector = getattr(model.model, "image_projector", None)
    if getattr(projector, "attend", None) is None:
        return []
    mix = getattr(projector, "mix", None)
    return [projector.attend] + ([mix[0]] if mix is not None else [])


def taught_parts(model) -> list[nn.Module]:
    """What stage 0 teaches and keeps: the vision tower and, in the image projector, the attend
    connector and its mixing layer's first layer (``attend_reader``)."""
    return [model.model.vision_tower] + attend_reader(model)


def exact_match_by_type(right: torch.Tensor, examples: list[Example]) -> dict[str, float]:
    """The share of ``right`` per question type of ``examples`` (untyped rows: ``all``)."""
    types = pd.Series([e.question_type or "all" for e in examples])
    return {kind: float(right.numpy()[(types == kind).to_numpy()].mean()) for kind in sorted(types.unique())}


def type_weights(examples: list[Example]) -> torch.Tensor:
    """Each row's weight so that every question type (untyped rows: one type) weighs the same in
    a mean over the rows: 1 / (its type's share × the number of types); the weights average 1."""
    kinds = pd.Series([e.question_type or "all" for e in examples])
    share = kinds.map(kinds.value_counts(normalize=True))
    return torch.tensor((1 / (share * kinds.nunique())).to_numpy(), dtype=torch.float32)


def validation_score(right: torch.Tensor, examples: list[Example], balance_types: bool = False) -> float:
    """What stage 0 stops and chooses on: the validation rows' exact match, or with
    ``balance_types`` the mean of the question types' (``exact_match_by_type``)."""
    if not balance_types:
        return float(right.float().mean())
    by_type = exact_match_by_type(right, examples)
    return sum(by_type.values()) / len(by_type)


def snapshot(parts: list[nn.Module]) -> list[dict]:
    return copy.deepcopy([part.state_dict() for part in parts])


def restore(parts: list[nn.Module], states: list[dict]) -> None:
    for part, state in zip(parts, states, strict=True):
        part.load_state_dict(state)


def pretrain_reader(model, processor, train: list[Example], train_pixels: torch.Tensor, validation: list[Example],
                    validation_pixels: torch.Tensor, *, seed: int, max_epochs: int, patience: int = 3,
                    images_per_batch: int = 8, learning_rate: float = 1e-3, restarts: int = 1,
                    mirror: bool = False, balance_types: bool = False) -> Reading:
    """Train ``model``'s vision tower and attend connector (in place) with a classifier head on the
    VQA rows until the validation exact match has not improved for ``patience`` epochs (at most
    ``max_epochs``); the best epoch's tower and connector weights are kept. Nothing else of the
    model changes. ``restarts``: trained that many times from the same starting weights (seeds
    ``seed``, ``seed + 1``, …: the classifier's initialisation and the batch order), the best on
    validation kept — on the scenes the outcome is bimodal (spatial questions learned or at
    chance, by seed: docs/results.md). ``mirror``: training images mirrored at random (``Mirror``;
    its own generator, seeded like the restart, so the batch order is the unmirrored run's).
    ``balance_types``: every question type weighs the same in the loss (each row weighted by
    1 / its type's share of the training rows) and in the validation score that stops and
    chooses (the mean of the types' exact matches; the history's ``validation_exact_match``
    column then holds that mean), so a rare type (the scenes' spatial questions, 7.5% of the
    rows) is not learned last."""
    if model.config.image_connector != "attend":
        raise ValueError(f"stage 0 trains the attend connector's reading; this model's image_connector is "
                         f"{model.config.image_connector!r} (set image_connector=attend, or fuse_stage0_epochs=0)")
    train = [e for e in train if e.task == "vqa"]
    validation = [e for e in validation if e.task == "vqa"]
    if not train or not validation:
        raise ValueError("stage 0 learns from typed VQA rows and stops early on validation ones; this run has "
                         f"{len(train)} training and {len(validation)} validation VQA rows (set fuse_stage0_epochs=0)")
    start = time.perf_counter()
    vocabulary = Vocabulary([e.question for e in train], [e.target for e in train])
    rows, validation_rows = Rows.of(train, vocabulary), Rows.of(validation, vocabulary)
    (ids, mask), (validation_ids, validation_mask) = prompts(processor, train), prompts(processor, validation)
    weights = type_weights(train) if balance_types else None
    tower, attend = model.model.vision_tower, model.model.image_projector.attend
    taught = taught_parts(model)  # what stage 0 teaches and keeps
    flags = {p: p.requires_grad for p in model.parameters()}
    begin = snapshot(taught)  # where every restart starts
    runs, readers = [], []
    for restart in range(restarts):
        restore(taught, begin)
        torch.manual_seed(seed + restart)
        reader = Reader(model, len(vocabulary.answers))
        for part in (tower, attend, reader.head):
            part.requires_grad_(True)
        optimiser = torch.optim.Adam([p for part in (tower, attend, reader.head) for p in part.parameters()],
                                     lr=learning_rate)

        flips = Mirror.of(train, rows, vocabulary, len(train_pixels), MIRROR_SEED + seed + restart) if mirror else None

        def forward(chosen, rows_, images, reader=reader, flips=flips):
            pixels, answers = train_pixels[chosen], rows.answers[rows_]
            if flips is not None:
                pixels, answers = flips(pixels, chosen, rows_, images, answers)
            return reader(pixels, ids[rows_], mask[rows_], images), answers, *([] if weights is None else [weights[rows_]])

        def check(reader=reader):
            return _correct(reader, validation_rows, validation_ids, validation_mask, validation_pixels)

        runs.append(early_stopped(
            forward, rows, optimiser, tower.train, lambda check=check: validation_score(check(), validation, balance_types),
            lambda reader=reader: snapshot(taught + [reader.head]), images_per_batch=images_per_batch,
            generator=torch.Generator().manual_seed(seed + restart), max_epochs=max_epochs, patience=patience))
        readers.append(reader)
    kept = max(range(restarts), key=lambda k: runs[k].best_score)  # the first of equals
    run = runs[kept]
    restore(taught + [readers[kept].head], run.best)  # the head too: the per-type score is the best epoch's
    right = _correct(readers[kept], validation_rows, validation_ids, validation_mask, validation_pixels)
    by_type = exact_match_by_type(right, validation)
    for parameter, flag in flags.items():
        parameter.requires_grad_(flag)
    model.eval()
    history = pd.concat([pd.DataFrame(r.history).assign(restart=k) for k, r in enumerate(runs)], ignore_index=True)
    return Reading(sum(r.epochs for r in runs), run.best_epoch, sum(r.steps for r in runs),
                   time.perf_counter() - start, float(right.float().mean()), history, by_type, kept)
