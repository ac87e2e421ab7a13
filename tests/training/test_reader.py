"""03's stage 0 (mbmlab.training.reader): the image tower and the attend connector learn to read
an image for its question under an answer classifier; nothing else of the model changes."""
import pytest
import torch

from mbmlab.data.tasks import Example
from mbmlab.training import reader
from tests import family

COLOURS = {"red": (1.0, -1.0, -1.0), "green": (-1.0, 1.0, -1.0), "blue": (-1.0, -1.0, 1.0)}


def two_squares(n: int, seed: int):
    """n 32-px white images with a square in the left half and one of another colour in the right;
    asked the colour of one side. A read of the whole image (its mean) tells the two colours
    present but not which is where: 50% at best; the question must choose where to look."""
    g = torch.Generator().manual_seed(seed)
    names = list(COLOURS)
    pixels, examples = torch.ones(n, 3, family.IMAGE_SIZE, family.IMAGE_SIZE), []
    for i in range(n):
        left, right = torch.randperm(3, generator=g)[:2].tolist()
        pixels[i, :, 8:24, 0:14] = torch.tensor(COLOURS[names[left]]).view(3, 1, 1)
        pixels[i, :, 8:24, 18:32] = torch.tensor(COLOURS[names[right]]).view(3, 1, 1)
        examples += [Example("vqa", i, None, "what color is the left one?", names[left], "colour"),
                     Example("vqa", i, None, "what color is the right one?", names[right], "colour"),
                     Example("caption", i, None, "", "not a vqa row")]
    return pixels, examples


def test_stage0_learns_to_read_where_the_question_points_and_changes_only_tower_and_connector(tokenizer):
    """Mutation: the prompt's embeddings zeroed in ``Reader.forward`` (the read no longer depends on
    the question) → the classifier stays near 50% and the first assert fails (run)."""
    model, processor = family.build(tokenizer, "gpt2", "resnet", with_audio=False, image_connector="attend",
                                    attend_dim=32, image_prefix_length=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {k: p.requires_grad for k, p in model.named_parameters()}
    train_px, train = two_squares(160, seed=0)
    val_px, val = two_squares(40, seed=1)
    reading = reader.pretrain_reader(model, processor, train, train_px, val, val_px, seed=0, max_epochs=12,
                                     patience=3, images_per_batch=8, learning_rate=3e-3)
    assert reading.validation_exact_match > 0.9
    scores = reading.history["validation_exact_match"].tolist()
    assert reading.validation_exact_match == max(scores) and reading.best_epoch == 1 + scores.index(max(scores))
    assert reading.epochs == len(scores) and reading.steps == reading.epochs * 20  # 160 images, 8 a batch
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("model.vision_tower.") for k in changed)
    assert any(k.startswith("model.image_projector.attend.") for k in changed)
    assert all(k.startswith(("model.vision_tower.", "model.image_projector.attend.")) for k in changed), changed
    assert {k: p.requires_grad for k, p in model.named_parameters()} == flags


def test_stage0_is_refused_for_a_connector_that_does_not_read_for_the_question(tokenizer):
    model, processor = family.build(tokenizer, "gpt2", "resnet", with_audio=False, image_connector="pooled")
    px, examples = two_squares(4, seed=0)
    with pytest.raises(ValueError, match="image_connector is 'pooled'"):
        reader.pretrain_reader(model, processor, examples, px, examples, px, seed=0, max_epochs=1)
    model, processor = family.build(tokenizer, "gpt2", "resnet", with_audio=False, image_connector="attend",
                                    attend_dim=16)
    captions = [e for e in examples if e.task == "caption"]
    with pytest.raises(ValueError, match="0 validation VQA rows"):
        reader.pretrain_reader(model, processor, examples, px, captions, px, seed=0, max_epochs=1)


def test_the_multi_process_fuse_script_refuses_stage0_instead_of_skipping_it(tmp_path):
    """``accelerate launch -m mbmlab.lab.launch_fuse`` trains stages 1–2 only; asked for stage 0 it
    stops before loading anything, saying so (mutation: the check removed → it reaches the run
    folder and fails on the missing 02 outputs instead, a different message)."""
    from mbmlab.lab import launch_fuse

    with pytest.raises(SystemExit, match="does not run 03's stage 0"):
        launch_fuse.main(["--run", str(tmp_path / "no-run"), "--out", str(tmp_path / "out"),
                          "--params", '{"image_connector": "attend", "fuse_stage0_epochs": 5}'])
