"""Training the ``cnn_bow`` VQA classifier (``mbmlab.models.cnn_bow``) on a run's VQA rows: Adam,
batches of whole images (each image's questions together, the image encoded once), and early
stopping on the validation split's exact match — the test split is never looked at here."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from ..data.tasks import Example
from ..models.cnn_bow import CnnBowVqa, Vocabulary


@dataclass
class Rows:
    """The VQA rows of one split as tensors: word bags, answer ids, and each row's image."""

    bags: torch.Tensor
    answers: torch.Tensor
    images: torch.Tensor  # row → image row of the split's pixel tensor

    @classmethod
    def of(cls, examples: list[Example], vocabulary: Vocabulary) -> "Rows":
        vqa = [e for e in examples if e.task == "vqa"]
        return cls(vocabulary.bag([e.question for e in vqa]), vocabulary.answer_ids([e.target for e in vqa]),
                   torch.tensor([e.image for e in vqa], dtype=torch.long))

    def __len__(self) -> int:
        return len(self.answers)


@dataclass
class Fitted:
    model: CnnBowVqa
    vocabulary: Vocabulary
    epochs: int  # epochs run (the best one's weights are kept)
    best_epoch: int
    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)  # per epoch: train loss, validation exact match


def batches(rows: Rows, images_per_batch: int, generator: torch.Generator | None = None):
    """(pixel rows, row indices, image index within the batch) per batch of whole images; in a
    random order of images when ``generator`` is given, else in image order."""
    images = torch.unique(rows.images)
    if generator is not None:
        images = images[torch.randperm(len(images), generator=generator)]
    for start in range(0, len(images), images_per_batch):
        chosen = images[start:start + images_per_batch]
        position = torch.full((int(rows.images.max()) + 1,), -1, dtype=torch.long)
        position[chosen] = torch.arange(len(chosen))
        row_index = torch.nonzero(position[rows.images] >= 0).flatten()
        yield chosen, row_index, position[rows.images[row_index]]


@torch.no_grad()
def predict(model: CnnBowVqa, vocabulary: Vocabulary, examples: list[Example], pixel_values: torch.Tensor,
            images_per_batch: int = 128) -> list[str]:
    """The classifier's answer to each VQA example, in order."""
    rows = Rows.of(examples, vocabulary)
    out = torch.empty(len(rows), dtype=torch.long)
    model.eval()
    for chosen, row_index, image_index in batches(rows, images_per_batch):
        out[row_index] = model(pixel_values[chosen], rows.bags[row_index], image_index).argmax(-1)
    return [vocabulary.answers[i] for i in out.tolist()]


def exact_match(model, vocabulary, examples, pixel_values) -> float:
    from ..metrics.vqa import answer_matches

    vqa = [e for e in examples if e.task == "vqa"]
    predicted = predict(model, vocabulary, vqa, pixel_values)
    return sum(answer_matches(p, e.target) for p, e in zip(predicted, vqa)) / max(1, len(vqa))


@dataclass
class EarlyStopped:
    best: object  # the snapshot taken at the best validation epoch
    best_score: float
    best_epoch: int
    epochs: int
    steps: int
    history: list[dict]  # per epoch: train loss, validation exact match


def early_stopped(forward, rows: Rows, optimiser, train_mode, score, snapshot, *, images_per_batch: int,
                  generator: torch.Generator, max_epochs: int, patience: int) -> EarlyStopped:
    """Epochs of cross-entropy steps on batches of whole images (``forward(chosen, row_index,
    image_index)`` → the batch's logits and the answer ids they are scored against, and optionally
    each row's weight in the batch's mean loss), each followed
    by ``score()`` on validation, until it has not improved for ``patience`` epochs (at most ``max_epochs``); ``snapshot()`` of the best epoch is returned.
    ``train_mode()`` is called before each epoch (``score`` may switch to evaluation)."""
    best, best_score, best_epoch, steps, history, since = None, -1.0, 0, 0, [], 0
    for epoch in range(1, max_epochs + 1):
        train_mode()
        losses = []
        for chosen, row_index, image_index in batches(rows, images_per_batch, generator):
            logits, answers, *weights = forward(chosen, row_index, image_index)
            if weights:  # per-row weights: the batch's weighted mean
                loss = (nn.functional.cross_entropy(logits, answers, reduction="none") * weights[0]).sum() / \
                    weights[0].sum()
            else:
                loss = nn.functional.cross_entropy(logits, answers)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            steps += 1
        value = score()
        history.append({"epoch": epoch, "train_loss": sum(losses) / len(losses), "validation_exact_match": value})
        if value > best_score:
            best, best_score, best_epoch, since = snapshot(), value, epoch, 0
        else:
            since += 1
            if since >= patience:
                break
    return EarlyStopped(best, best_score, best_epoch, epoch, steps, history)


def fit(tower: nn.Module, feature_dim: int, train: list[Example], train_pixels: torch.Tensor,
        validation: list[Example], validation_pixels: torch.Tensor, *, seed: int, max_epochs: int = 30,
        patience: int = 3, images_per_batch: int = 32, learning_rate: float = 1e-3, hidden: int = 128) -> Fitted:
    """Train until the validation exact match has not improved for ``patience`` epochs (at most
    ``max_epochs``); the weights of the best validation epoch are kept."""
    if not any(e.task == "vqa" for e in validation):
        raise ValueError("the cnn_bow baseline stops early on validation VQA rows; the validation split has none")
    start = time.perf_counter()
    vqa = [e for e in train if e.task == "vqa"]
    vocabulary = Vocabulary([e.question for e in vqa], [e.target for e in vqa])
    rows = Rows.of(vqa, vocabulary)
    torch.manual_seed(seed)
    model = CnnBowVqa(tower, feature_dim, len(vocabulary.words), len(vocabulary.answers), hidden)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    run = early_stopped(lambda chosen, rows_, images: (model(train_pixels[chosen], rows.bags[rows_], images),
                                                       rows.answers[rows_]), rows,
                        optimiser, model.train, lambda: exact_match(model, vocabulary, validation, validation_pixels),
                        lambda: copy.deepcopy(model.state_dict()), images_per_batch=images_per_batch,
                        generator=generator, max_epochs=max_epochs, patience=patience)
    model.load_state_dict(run.best)
    model.eval()
    return Fitted(model, vocabulary, run.epochs, run.best_epoch, run.steps, time.perf_counter() - start, run.history)
