"""03's stage 0 (mbmlab.training.reader): the image tower and the attend connector learn to read
an image for its question under an answer classifier; nothing else of the model changes."""
import pandas as pd
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
    assert reading.by_type == {"colour": reading.validation_exact_match}  # every row here asks the colour
    assert reading.metrics()["fuse/stage0_validation_exact_match/colour"] == reading.validation_exact_match
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


def test_stages_after_stage0_keep_its_reading_and_train_its_projection(tokenizer, tmp_path):
    """``fuse_stage0_keep_reader`` (off by default, measured worse): stages 1–2 train the attend connector's
    projection into the GPT but leave its reading as stage 0 taught it; off, the reading trains
    on. Mutation: the ``reader.requires_grad_(False)`` line in ``set_trainable`` removed → the
    kept reading changes and the ``not read`` assert fails (run)."""
    from mbmlab.training import fused

    values = {"fuse_stage1_epochs": 1.0, "fuse_stage1_learning_rate": 1e-2, "fuse_epochs": 1.0,
              "fuse_learning_rate": 1e-2, "fuse_train_parts": ["image_projector", "language_model"],
              "fuse_stage0_epochs": 3}
    for keep in (True, False):
        model, processor = family.build(tokenizer, "gpt2", "resnet", with_audio=False, image_connector="attend",
                                        attend_dim=16, image_prefix_length=2)
        px, examples = two_squares(8, seed=0)
        plan = fused.plan(values | {"fuse_stage0_keep_reader": keep})
        assert [s.keep_reader for s in plan] == [keep, keep]
        before = {k: v.clone() for k, v in model.state_dict().items()}
        fused.train_stages(model, fused.TaskUnits(examples, processor, px), fused.FusionCollator(processor), plan,
                           tmp_path / str(keep), batch_size=4, seed=0, disable_tqdm=True, save_strategy="no")
        changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
        read = {k for k in changed if k.startswith("model.image_projector.attend.")}
        assert any(k.startswith("model.image_projector.projector.") for k in changed)
        assert (not read) if keep else read, read
        counts = fused.parameter_counts(model, plan[-1].parts, plan[-1].keep_reader).set_index("part")
        kept = sum(p.numel() for p in model.model.image_projector.attend.parameters()) if keep else 0
        assert counts.loc["image_projector", "trainable"] == counts.loc["image_projector", "parameters"] - kept
    # no stage 0 (04's baselines, or fuse_stage0_epochs=0): nothing to keep, the reading must learn
    assert not any(s.keep_reader for s in fused.plan(values, stage0=False))
    assert not any(s.keep_reader for s in fused.plan(values | {"fuse_stage0_epochs": 0}))


def test_a_resume_skips_stage0_only_where_a_checkpoint_holds_what_it_taught(tokenizer, tmp_path):
    """A 03 interrupted in stage 1 before its first checkpoint leaves a stage folder and no
    checkpoint: the resume must teach the reading again, or stages 1–2 would start from an
    untaught reader. Mutation: the rule back to "the checkpoint folder exists" → the first
    assert fails (run)."""
    from types import SimpleNamespace

    from mbmlab.training import fused

    model, processor = family.build(tokenizer, "gpt2", "resnet", with_audio=False, image_connector="attend",
                                    attend_dim=16, image_prefix_length=2)
    px, examples = two_squares(8, seed=0)
    prepared = SimpleNamespace(model=model, processor=processor, examples={"train": examples, "validation": examples},
                               pixel_values={"train": px, "validation": px})
    values = {"fuse_stage0_epochs": 1, "fuse_stage0_patience": 5, "fuse_stage0_restarts": 1, "fuse_stage0_mirror": False, "resume": True, "seed": 0}
    (tmp_path / "stage1").mkdir()
    assert fused.read_stage(prepared, values, checkpoints=tmp_path) is not None
    (tmp_path / "stage1" / "checkpoint-5").mkdir()
    assert fused.read_stage(prepared, values, checkpoints=tmp_path) is None
    assert fused.read_stage(prepared, values | {"resume": False}, checkpoints=tmp_path) is not None


def test_stage0_restarts_from_the_same_weights_and_keeps_the_best_on_validation(tokenizer):
    """Three restarts (seeds 0, 1, 2) from the same starting weights: each restart's history starts
    at epoch 1, the kept score is the best restart's, and a single training with restart k's seed
    gives restart k's history — so each restart began from the starting weights. Mutations:
    ``max`` → ``min`` in choosing the kept restart → the score assert fails; the starting weights
    not loaded before each restart → restart 1's history differs (both run)."""
    def build():
        torch.manual_seed(0)
        return family.build(tokenizer, "gpt2", "resnet", with_audio=False, image_connector="attend",
                            attend_dim=16, image_prefix_length=2)

    train_px, train = two_squares(32, seed=0)
    val_px, val = two_squares(24, seed=1)
    args = dict(seed=0, max_epochs=2, patience=3, images_per_batch=8, learning_rate=1e-3)
    model, processor = build()
    reading = reader.pretrain_reader(model, processor, train, train_px, val, val_px, restarts=3, **args)
    history = reading.history
    assert sorted(history["restart"].unique()) == [0, 1, 2] and reading.epochs == len(history) == 6
    assert (history.groupby("restart")["epoch"].min() == 1).all()
    best = history.groupby("restart")["validation_exact_match"].max()
    assert best.nunique() > 1  # the restarts end apart, so choosing among them is tested
    assert reading.validation_exact_match == best.max() and reading.restart == int(best.idxmax())
    assert reading.metrics()["fuse/stage0_restart"] == reading.restart
    for k in (0, 1):
        model, processor = build()
        alone = reader.pretrain_reader(model, processor, train, train_px, val, val_px, restarts=1, **args | {"seed": k})
        same = history[history["restart"] == k].drop(columns="restart").reset_index(drop=True)
        pd.testing.assert_frame_equal(alone.history.drop(columns="restart"), same)


def test_mirrored_answers_follow_the_mirror_and_cover_every_drawn_question_type():
    """Hand cases; and every question type the drawn sources ask has a rule (a new type without
    one would silently never be mirrored). Mutation: "spatial" moved into ``MIRROR_KEEPS`` →
    the swap asserts fail (run)."""
    from mbmlab.data import attributes, easyvqa, scenes

    assert attributes.mirrored_answer("yes", "spatial") == "no"
    assert attributes.mirrored_answer("no", "spatial") == "yes"
    assert attributes.mirrored_answer("red", "colour") == "red"
    assert attributes.mirrored_answer("two", "count") == "two"
    assert attributes.mirrored_answer("yes", "yes/no") == "yes"
    assert attributes.mirrored_answer("cat", "") is None  # a user's untyped question
    assert attributes.mirrored_answer("maybe", "spatial") is None
    easy = {easyvqa.question_type(a) for a in ("red", "circle", "yes")}
    for kind in (*scenes.QUESTION_TYPES, *easy):
        assert attributes.mirrored_answer("yes", kind) is not None, kind


def test_stage0_mirror_flips_images_and_their_spatial_answers_together_and_never_an_image_without_a_rule():
    """Three images: a spatial and a colour question; a user's untyped question; a spatial "no".
    Over many batches each allowed image is mirrored sometimes and kept sometimes; a mirrored
    image's pixels are the original's flipped left to right and its spatial answer swapped, its
    colour answer kept; the untyped image is never mirrored. Mutations: the answers taken from
    ``answers`` regardless of ``flip`` → the swap assert fails; ``& self.allowed[chosen]`` removed
    → image 1 is flipped and its assert fails (both run)."""
    from mbmlab.models.cnn_bow import Vocabulary
    from mbmlab.training.cnn_bow import Rows

    examples = [Example("vqa", 0, None, "is the circle left of the star?", "yes", "spatial"),
                Example("vqa", 0, None, "what color is the circle?", "red", "colour"),
                Example("vqa", 1, None, "what is this?", "cat", ""),
                Example("vqa", 2, None, "is the star left of the circle?", "no", "spatial")]
    vocabulary = Vocabulary([e.question for e in examples], [e.target for e in examples])
    rows = Rows.of(examples, vocabulary)
    pixels = torch.arange(3 * 3 * 4 * 4, dtype=torch.float).view(3, 3, 4, 4)
    mirror = reader.Mirror.of(examples, rows, vocabulary, images=3, seed=0)
    chosen, row_index, image_index = torch.arange(3), torch.arange(4), rows.images
    seen = {0: set(), 1: set(), 2: set()}
    for _ in range(40):
        out, answers = mirror(pixels[chosen], chosen, row_index, image_index, rows.answers)
        for image in range(3):
            flipped = torch.equal(out[image], pixels[image].flip(-1))
            assert flipped or torch.equal(out[image], pixels[image])
            seen[image].add(flipped)
        names = [vocabulary.answers[i] for i in answers]
        assert names[0] == ("no" if torch.equal(out[0], pixels[0].flip(-1)) else "yes")
        assert names[1] == "red"
        assert names[3] == ("yes" if torch.equal(out[2], pixels[2].flip(-1)) else "no")
    assert seen == {0: {True, False}, 1: {False}, 2: {True, False}}


def test_the_mixing_layer_is_stage0s_hidden_layer_starts_silent_and_survives_a_reload(tokenizer, tmp_path):
    """``attend_mix``: stage 0 trains the mixing layer's first layer as its classifier's hidden
    layer (and nothing else of the projector); its output layer starts at zero, so before stages
    1–2 the GPT's image tokens are the head-by-head projection's; the layer is saved and reloaded
    with the model; ``keep_reader`` freezes it with the connector. Mutations: ``Reader`` given a
    head of its own (not ``mix[0]``) → the "mix.0 changed" assert fails; ``starts_at_zero`` not
    honoured in ``_init_weights`` → the silent-start assert fails (both run)."""
    from mbmlab.models import MbmForConditionalGeneration
    from mbmlab.training import fused

    model, processor = family.build(tokenizer, "gpt2", "resnet", with_audio=False, image_connector="attend",
                                    attend_dim=16, image_prefix_length=2, attend_mix=24)
    projector = model.model.image_projector
    assert projector.mix[0].in_features == 2 * 16 and projector.mix[2].out_features == 2 * model.config.text_config.hidden_size
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_px, train = two_squares(32, seed=0)
    val_px, val = two_squares(16, seed=1)
    reader.pretrain_reader(model, processor, train, train_px, val, val_px, seed=0, max_epochs=2, patience=3)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert "model.image_projector.mix.0.weight" in changed
    assert not any(k.startswith(("model.image_projector.mix.2", "model.image_projector.projector")) for k in changed)
    grid = model.model.image_grid(train_px[:2])  # images 0 and 1, each asked its left colour
    embeds, lengths = model.model.image_prompts(*reader.prompts(processor, [train[0], train[3]]))
    heads = projector.attend(grid, embeds, lengths)
    assert torch.equal(projector(grid, embeds, lengths), projector.projector(heads))  # the mix starts silent
    torch.nn.init.normal_(projector.mix[2].weight)  # as stages 1–2 would leave it: not silent
    tokens = projector(grid, embeds, lengths)
    assert not torch.allclose(tokens, projector.projector(heads))
    model.save_pretrained(tmp_path / "m")
    again = MbmForConditionalGeneration.from_pretrained(tmp_path / "m").eval()
    assert torch.equal(again.model.image_projector(grid, embeds, lengths), tokens)
    fused.set_trainable(model, ["image_projector"], keep_reader=True)
    assert not projector.mix[0].weight.requires_grad and not projector.attend.embed.weight.requires_grad
    assert projector.mix[2].weight.requires_grad


def test_balanced_types_weigh_each_question_type_the_same_in_the_loss_and_the_validation_score(tokenizer,
                                                                                               monkeypatch):
    """``fuse_stage0_balance_types``, by hand: types colour ×3 and spatial ×1 get weights 2/3 and 2
    (each type's rows sum to 2, the weights average 1); the score of right = 1, 1, 1, 0 is 0.75
    plain and (1 + 0) / 2 = 0.5 balanced. ``early_stopped`` with those weights on one shared pair of
    logits over answers (3 rows say answer 0, 1 row answer 1): from equal logits the weighted loss's
    gradient is 0 — one SGD step leaves them equal — while the plain mean moves them toward answer 0.
    Through ``read_stage`` the parameter reaches stage 0, whose every epoch is scored by the types'
    mean. Mutations, each fails: the weights ignored in ``early_stopped``; ``read_stage`` not passing
    the parameter; ``validation_score`` ignoring ``balance_types``."""
    from types import SimpleNamespace

    from mbmlab.models.cnn_bow import Vocabulary
    from mbmlab.training import cnn_bow, fused

    rows_ = [Example("vqa", i, None, q, a, kind) for i, (q, a, kind) in
             enumerate([("what colour?", "red", "colour")] * 3 + [("is it left?", "no", "spatial")])]
    weights = reader.type_weights(rows_)
    assert weights.tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3, 2.0]) and float(weights.mean()) == pytest.approx(1.0)
    right = torch.tensor([True, True, True, False])
    assert reader.validation_score(right, rows_) == 0.75 and reader.validation_score(right, rows_, True) == 0.5

    vocabulary = Vocabulary([e.question for e in rows_], [e.target for e in rows_])
    rows = cnn_bow.Rows.of(rows_, vocabulary)
    assert rows.answers.tolist() == [1, 1, 1, 0]  # "no" sorts before "red"
    for weighted, moved in ((True, False), (False, True)):
        logits = torch.nn.Parameter(torch.zeros(2))
        optimiser = torch.optim.SGD([logits], lr=1.0)

        def forward(chosen, index, images, logits=logits, weighted=weighted):
            out = (logits.expand(len(index), 2), rows.answers[index])
            return (*out, weights[index]) if weighted else out

        cnn_bow.early_stopped(forward, rows, optimiser, lambda: None, lambda: 0.0, lambda: None, images_per_batch=4,
                              generator=torch.Generator().manual_seed(0), max_epochs=1, patience=1)
        assert (abs(float(logits[0] - logits[1])) > 0.1) == moved, (weighted, logits)

    calls = []
    monkeypatch.setattr(reader, "_correct", lambda _r, rows, *a: calls.append(1) or torch.arange(len(rows)) % 4 != 3)
    model, processor = family.build(tokenizer, "gpt2", "resnet", with_audio=False, image_connector="attend",
                                    attend_dim=16, image_prefix_length=2)
    px = torch.zeros(4, 3, family.IMAGE_SIZE, family.IMAGE_SIZE)
    prepared = SimpleNamespace(model=model, processor=processor, examples={"train": rows_, "validation": rows_},
                               pixel_values={"train": px, "validation": px})
    values = {"fuse_stage0_epochs": 2, "fuse_stage0_patience": 5, "fuse_stage0_restarts": 1, "fuse_stage0_mirror": False,
              "resume": False, "seed": 0}
    for balanced, score in ((True, 0.5), (False, 0.75)):
        reading = fused.read_stage(prepared, values | {"fuse_stage0_balance_types": balanced})
        assert reading.history["validation_exact_match"].tolist() == [score, score]  # what stopped and chose
        assert reading.validation_exact_match == 0.75 and reading.by_type == {"colour": 1.0, "spatial": 0.0}
