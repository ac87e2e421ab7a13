"""Training the cnn_bow classifier (mbmlab.training.cnn_bow): batches of whole images, a task it
must learn to solve, early stopping on validation."""
import torch

from mbmlab.data.tasks import Example
from mbmlab.models.cnn_bow import Vocabulary
from mbmlab.models.vision import new_image_encoder, resnet_config
from mbmlab.training import cnn_bow

COLOURS = {"red": (1.0, -1.0, -1.0), "green": (-1.0, 1.0, -1.0), "blue": (-1.0, -1.0, 1.0)}


def colour_images(n: int, seed: int):
    """n 16-px images of one colour each with a square of another, and two questions each: the
    colour of the background, and whether the square is a given colour (needs image and question)."""
    g = torch.Generator().manual_seed(seed)
    names = list(COLOURS)
    pixels, examples = torch.zeros(n, 3, 16, 16), []
    for i in range(n):
        back, square = torch.randperm(3, generator=g)[:2].tolist()
        pixels[i] = torch.tensor(COLOURS[names[back]]).view(3, 1, 1)
        pixels[i, :, 4:12, 4:12] = torch.tensor(COLOURS[names[square]]).view(3, 1, 1)
        asked = names[torch.randint(3, (1,), generator=g).item()]
        examples += [Example("vqa", i, None, "what color is the background?", names[back], "colour"),
                     Example("vqa", i, None, f"is the square {asked}?", "yes" if asked == names[square] else "no", "yes/no"),
                     Example("caption", i, None, "", "not a vqa row")]
    return pixels, examples


def test_batches_cover_every_row_once_and_index_its_image():
    v = Vocabulary(["q"], ["a"])
    examples = [Example("vqa", i % 5, None, "q", "a") for i in range(12)]
    rows = cnn_bow.Rows.of(examples, v)
    seen = []
    for chosen, row_index, image_index in cnn_bow.batches(rows, 2, torch.Generator().manual_seed(0)):
        assert len(chosen) <= 2
        assert torch.equal(chosen[image_index], rows.images[row_index])  # each row gets its own image
        seen += row_index.tolist()
    assert sorted(seen) == list(range(12))


def test_fit_learns_colour_and_a_question_that_needs_the_image():
    train_px, train = colour_images(240, seed=0)
    val_px, val = colour_images(60, seed=1)
    test_px, test = colour_images(60, seed=2)
    tower = new_image_encoder(resnet_config(8, 1), seed=0)
    fitted = cnn_bow.fit(tower, 32, train, train_px, val, val_px, seed=0, max_epochs=15, patience=3,
                         images_per_batch=16, learning_rate=3e-3)
    assert cnn_bow.exact_match(fitted.model, fitted.vocabulary, test, test_px) > 0.9  # chance: 1/3 and 1/2
    scores = [h["validation_exact_match"] for h in fitted.history]
    assert fitted.best_epoch == 1 + scores.index(max(scores))  # the best validation epoch's weights are kept
    assert fitted.epochs == len(fitted.history) and fitted.steps == fitted.epochs * 15
    assert cnn_bow.exact_match(fitted.model, fitted.vocabulary, val, val_px) == max(scores)


def test_fit_stops_after_patience_epochs_and_keeps_the_best_validation_weights(monkeypatch):
    import copy

    train_px, train = colour_images(32, seed=0)
    val_px, val = colour_images(16, seed=1)
    scripted, states = iter([0.5, 0.9, 0.6, 0.4, 0.95]), []

    def validation_score(model, vocabulary, examples, pixels):
        assert examples is val and pixels is val_px  # chosen on validation, never on anything else
        states.append(copy.deepcopy(model.state_dict()))
        return next(scripted)

    monkeypatch.setattr(cnn_bow, "exact_match", validation_score)
    tower = new_image_encoder(resnet_config(4, 1), seed=0)
    fitted = cnn_bow.fit(tower, 16, train, train_px, val, val_px, seed=0, max_epochs=40, patience=2,
                         images_per_batch=16, learning_rate=1e-2)
    assert fitted.epochs == 4 and fitted.best_epoch == 2  # 0.6 and 0.4 after the best: two epochs of patience
    kept = fitted.model.state_dict()
    assert all(torch.equal(kept[k], states[1][k]) for k in kept)  # epoch 2's weights, not the last epoch's
    assert not all(torch.equal(kept[k], states[3][k]) for k in kept)
