"""Fusion training: task examples, the collator's loss masking, staged training, resume."""
import json

import datasets
import pytest
import torch

import family
from mbmlab.training import fused
from mbmlab.data.tasks import task_counts, task_examples, units
from mbmlab.models.processing_mbm import IGNORE_INDEX
from mbmlab.training.trainer import StopAfter

IMAGES = datasets.Dataset.from_dict({
    "image_id": ["a", "b"], "caption": ["a blue circle", ""],
    "questions": [["what color is the shape?", "is there a red shape?"], ["what shape is in the image?"]],
    "answers": [["blue", "no"], ["circle"]], "question_types": [["color", "yes/no"], ["shape"]]})
SPEECH = datasets.Dataset.from_dict({
    "image_id": ["a", "b", ""], "transcript": ["a blue circle", "what shape is in the image?", "hello there"],
    "kind": ["caption", "question", "transcript"], "answer": ["", "circle", ""], "question_type": ["", "shape", ""]})


def test_task_examples_from_images_and_speech():
    examples = task_examples(IMAGES, SPEECH)
    assert task_counts(examples) == {"caption": 1, "vqa": 3, "asr": 3, "spoken_vqa": 1, "translate": 0,
                                     "speech_translate": 0, "translated_vqa": 0}  # no translation column, none
    spoken = next(e for e in examples if e.task == "spoken_vqa")
    assert (spoken.image, spoken.clip, spoken.target, spoken.question_type) == (1, 1, "circle", "shape")
    assert task_counts(task_examples(IMAGES, None, ("vqa", "asr")))["asr"] == 0  # no speech, no ASR
    assert task_counts(task_examples(None, SPEECH)) == {"caption": 0, "vqa": 0, "asr": 3, "spoken_vqa": 0,
                                                        "translate": 0, "speech_translate": 0, "translated_vqa": 0}
    with pytest.raises(ValueError, match="unknown tasks"):
        task_examples(IMAGES, None, ("vqa", "ocr"))
    grouped = units(examples)
    assert [u.image for u in grouped] == [0, 1, None, None, None]  # by image, then each clip alone
    assert {e.task for e in grouped[1].examples} == {"vqa", "spoken_vqa"}


def data(processor, seed=0, vqa_per_image=0):
    pixels = processor.pixel_values(family.pictures(2, seed))
    features = processor.audio_features(family.clips(3, seed))
    return fused.TaskUnits(task_examples(IMAGES, SPEECH), processor, pixels, features, vqa_per_image=vqa_per_image)


def many_questions(processor, n_images=12, per_image=5, cap=2):
    """``n_images`` images with a caption and ``per_image`` distinct questions each, capped at ``cap``."""
    images = datasets.Dataset.from_dict({
        "image_id": [f"i{k}" for k in range(n_images)], "caption": [f"a shape {k}" for k in range(n_images)],
        "questions": [[f"question {k} {q}?" for q in range(per_image)] for k in range(n_images)],
        "answers": [["yes"] * per_image] * n_images, "question_types": [["yes/no"] * per_image] * n_images})
    return fused.TaskUnits(task_examples(images, None), processor, processor.pixel_values(family.pictures(n_images)),
                           vqa_per_image=cap, seed=3)


def test_the_vqa_cap_keeps_every_other_row_and_draws_its_questions_per_epoch(tokenizer):
    _, processor = family.build(tokenizer)
    units_ = many_questions(processor)
    draws = {}
    for epoch in (0, 1, 0):
        units_.set_epoch(epoch)
        seen = []
        for i in range(len(units_)):
            rows = units_[i]["rows"]
            assert [r[0] for r in rows].count("vqa") == 2 and [r[0] for r in rows].count("caption") == 1
            assert all(r in units_.rows[i] for r in rows)  # a subset of the unit's rows
            seen.append(tuple(tuple(r[2]) for r in rows if r[0] == "vqa"))
        assert draws.setdefault(epoch, seen) == seen  # the same epoch draws the same questions again
    assert draws[0] != draws[1]
    assert units_.rows_per_epoch() == 12 * 3 and units_.n_examples == 12 * 6
    units_.vqa_per_image = 0
    assert all(units_[i]["rows"] == units_.rows[i] for i in range(len(units_)))


def test_training_draws_other_questions_in_each_epoch(tokenizer, tmp_path):
    """Through the Trainer: each batch holds at most the cap's questions per image, and the second
    epoch trains on other questions than the first — the epoch reaches the data. Mutation:
    ``TaskUnits.set_epoch`` ignoring its epoch fails here (both epochs draw alike)."""
    model, processor = family.build(tokenizer)
    units_, collate, seen = many_questions(processor), fused.FusionCollator(processor), []

    def recording(items):
        seen.append((units_.epoch, [(it["image"], tuple(r[2])) for it in items for r in it["rows"] if r[0] == "vqa"]))
        assert all(sum(r[0] == "vqa" for r in it["rows"]) <= 2 for it in items)
        return collate(items)

    fused.train_stages(model, units_, recording, fused.stages(0, 0, 2, 1e-3, fused.PARTS), tmp_path,
                       batch_size=4, seed=0, disable_tqdm=True, save_strategy="no")
    by_epoch = {e: {q for epoch, rows in seen if epoch == e for q in rows} for e in (0, 1)}
    assert len(by_epoch[0]) == len(by_epoch[1]) == 12 * 2 and by_epoch[0] != by_epoch[1]


def test_under_two_processes_each_rank_draws_the_epochs_questions_as_one_process_does(tokenizer):
    """The VQA cap under ``accelerate launch`` with 2 processes, in one process: each rank's copy of
    the data behind accelerate's sharded loader (``prepare_data_loader``, as the Trainer's
    ``accelerator.prepare`` builds it for rank 0 and rank 1). accelerate tells an epoch to the
    sampler, not to the dataset, when the sampler takes it; our sampler passes it on. The ranks'
    batches together hold every image once an epoch, with exactly the questions a single process
    draws, other questions in the next epoch. Mutation: ``LengthGroupedEpochSampler.set_epoch`` not
    passing the epoch to the dataset fails here (epoch 1 draws epoch 0's questions)."""
    from accelerate.data_loader import prepare_data_loader

    from mbmlab.training.trainer import LengthGroupedEpochSampler

    _, processor = family.build(tokenizer)
    reference = many_questions(processor, n_images=16)

    def vqa_rows(items):
        return [(it["image"], tuple(r[2])) for it in items for r in it["rows"] if r[0] == "vqa"]

    ranks = []
    for rank in (0, 1):
        units_ = many_questions(processor, n_images=16)  # each process builds its own copy
        sampler = LengthGroupedEpochSampler(units_.lengths, 4, seed=0, dataset=units_)
        loader = torch.utils.data.DataLoader(units_, batch_sampler=torch.utils.data.BatchSampler(sampler, 4, False),
                                             collate_fn=lambda items: items)
        ranks.append((units_, prepare_data_loader(loader, num_processes=2, process_index=rank, put_on_device=False)))
    drawn = {}
    for epoch in (0, 1):
        rows, images = [], []
        for units_, loader in ranks:
            loader.set_epoch(epoch)
            assert units_.epoch == epoch
            for batch in loader:
                rows += vqa_rows(batch)
                images += [it["image"] for it in batch]
        reference.set_epoch(epoch)
        assert sorted(images) == list(range(16))  # every image once, split between the ranks
        assert sorted(rows) == sorted(vqa_rows([reference[i] for i in range(16)]))
        drawn[epoch] = set(rows)
    assert drawn[0] != drawn[1]


def test_collator_puts_loss_only_on_targets_and_encodes_each_input_once(tokenizer):
    _, processor = family.build(tokenizer)
    units_ = data(processor)
    batch = fused.FusionCollator(processor)([units_[i] for i in range(len(units_))])
    assert batch["input_ids"].shape[0] == 8  # 3 rows for image a, 2 for b, 3 ASR clips
    assert batch["pixel_values"].shape[0] == 2 and batch["image_index"].tolist() == [0, 0, 0, 1, 1]
    # clip 1 (spoken question of image b) is encoded once though two rows read it (spoken VQA, ASR)
    assert batch["input_features"].shape[0] == 3 and batch["audio_index"].tolist() == [0, 1, 0, 2]
    targets = set()
    for row in range(8):
        ids, labels, mask = batch["input_ids"][row], batch["labels"][row], batch["attention_mask"][row]
        placeholder = (ids == processor.image_token_id) | (ids == processor.audio_token_id)
        assert (labels[placeholder] == IGNORE_INDEX).all()
        assert (labels[mask == 0] == IGNORE_INDEX).all()  # padding carries no loss
        supervised = labels[labels != IGNORE_INDEX].tolist()
        assert supervised[-1] == tokenizer.eos_token_id
        targets.add(tokenizer.decode(supervised[:-1]))
    assert targets == {" blue", " no", " circle", " a blue circle", " what shape is in the image?", " hello there"}


def run_args(**extra):
    return dict(batch_size=2, seed=0, disable_tqdm=True, logging_steps=1) | extra


def test_stage1_trains_only_the_connectors(tokenizer, tmp_path):
    model, processor = family.build(tokenizer, "gpt2", "resnet")  # a ResNet: BatchNorm statistics too
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = fused.stages(2, 1e-2, 1, 1e-3, fused.PARTS)[:1]
    fused.train_stages(model, data(processor), fused.FusionCollator(processor), plan, tmp_path, **run_args())
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("model.image_projector", "model.audio_projector")) for k in changed), changed
    assert any(k.startswith("model.image_projector") for k in changed)
    assert any(k.startswith("model.audio_projector") for k in changed)
    counts = fused.parameter_counts(model, plan[0].parts).set_index("part")
    assert counts.loc["language_model", "trainable"] == 0 and counts.loc["image_projector", "trainable"] > 0


@pytest.mark.parametrize("vqa_per_image", [0, 1])
def test_resuming_an_interrupted_fusion_gives_the_same_weights(tokenizer, tmp_path, vqa_per_image):
    """Both stages uninterrupted vs stopped in stage 2 and resumed in a fresh model: the same
    weights bit for bit (dropout on, so the RNG state matters). With the VQA cap, the resumed
    epoch draws the questions the uninterrupted one drew (the epoch reaches the data on resume)."""
    plan = fused.stages(1, 1e-2, 2, 1e-3, fused.PARTS)
    runs = {}
    for name, callbacks, seed in (("whole", None, 0), ("split", {"stage2": [StopAfter(4)]}, 0)):
        model, processor = family.build(tokenizer, "gpt2", "resnet", seed=seed)
        runs[name] = fused.train_stages(model, data(processor, vqa_per_image=vqa_per_image),
                                       fused.FusionCollator(processor), plan,
                                       tmp_path / name, callbacks=callbacks, save_strategy="steps", save_steps=2,
                                       **run_args())
    assert runs["split"]["stage2"].state.global_step == 4 < runs["whole"]["stage2"].state.global_step
    fresh, processor = family.build(tokenizer, "gpt2", "resnet", seed=123)
    resumed = fused.train_stages(fresh, data(processor, vqa_per_image=vqa_per_image), fused.FusionCollator(processor),
                                plan, tmp_path / "split", resume=True, save_strategy="steps", save_steps=2, **run_args())
    whole = runs["whole"]["stage2"].model.state_dict()
    assert resumed["stage2"].state.global_step == runs["whole"]["stage2"].state.global_step
    for name, tensor in resumed["stage2"].model.state_dict().items():
        assert torch.equal(tensor, whole[name]), name


def test_unknown_parts_are_refused():
    with pytest.raises(ValueError, match="unknown parts"):
        fused.stages(1, 1e-3, 1, 1e-3, ["vision_tower", "eyes"])
    assert [s.name for s in fused.stages(0, 1e-3, 1, 1e-3, ["language_model"])] == ["stage2"]


def test_bf16_autocast_trains_the_fused_model(tokenizer, tmp_path):
    model, processor = family.build(tokenizer, "gpt2", "resnet")
    trainers = fused.train_stages(model, data(processor), fused.FusionCollator(processor),
                                 fused.stages(0, 0, 1, 1e-3, fused.PARTS), tmp_path, bf16=True, **run_args())
    assert trainers["stage2"].args.bf16 and trainers["stage2"].state.global_step > 0
    assert next(model.parameters()).dtype == torch.float32
    # after training it answers in fp32, as its saved copy does (mutation: ``fp32_forward`` not called
    # in ``trainer.train`` → accelerate's autocast forward stays and the logits differ, run)
    model.save_pretrained(tmp_path / "saved")
    reloaded = type(model).from_pretrained(tmp_path / "saved")
    batch = fused.FusionCollator(processor)([data(processor)[i] for i in range(2)])
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, reloaded(**batch).logits)


def test_predictions_frame_joins_image_and_clip_columns():
    from mbmlab.metrics import predictions_frame

    images = IMAGES.add_column("source", ["s", "s"]).add_column("colour", ["blue", ""]).add_column("shape", ["circle", ""])
    speech = SPEECH.add_column("clip_id", ["c0", "c1", "c2"]).add_column("voice", ["v0", "v1", "v2"]) \
        .add_column("accent", ["US"] * 3).add_column("gender", ["male"] * 3).add_column("engine", ["flite"] * 3)
    examples = task_examples(IMAGES, SPEECH)
    frame = predictions_frame(examples, [f"p{i}" for i in range(len(examples))], "spoken_vqa", images, speech)
    assert frame.to_dict("records") == [{
        "question": "what shape is in the image?", "answer": "circle", "question_type": "shape",
        "prediction": f"p{[e.task for e in examples].index('spoken_vqa')}", "image_id": "b", "source": "s",
        "colour": "", "shape": "", "clip_id": "c1", "voice": "v1", "accent": "US", "gender": "male",
        "engine": "flite"}]
    with pytest.raises(ValueError, match="examples for"):
        predictions_frame(examples, [], "vqa", images, speech)


@pytest.mark.parametrize("fusion, joins", [("cross_attention", ("model.image_projector", "model.audio_projector",
                                                                "model.fusion")),
                                            ("early", ("model.image_projector", "model.audio_projector"))])
def test_stage1_trains_what_each_strategy_joins_with(tokenizer, tmp_path, fusion, joins):
    model, processor = family.build(tokenizer, "gpt2", "resnet", fusion=fusion)
    family.open_gates(model, 0.0)  # as built: Flamingo's closed gates must open by training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = fused.stages(2, 1e-2, 1, 1e-3, fused.PARTS)
    fused.train_stages(model, data(processor), fused.FusionCollator(processor), plan[:1], tmp_path, **run_args())
    changed = {k for k in before if not torch.equal(before[k], model.state_dict()[k])}
    assert changed and all(k.startswith(joins) for k in changed), changed
    assert all(any(k.startswith(prefix) for k in changed) for prefix in joins)
    if fusion == "cross_attention":
        assert any(k.endswith("attn_gate") for k in changed)
    counts = fused.parameter_counts(model, plan[0].parts).set_index("part")
    assert counts.loc["language_model", "trainable"] == 0
    assert ("vision_tower" in counts.index) == (fusion != "early")


@pytest.mark.parametrize("how", ["scatter", "rows"])
def test_media_rows_backward_is_bitwise_repeatable_under_load(how):
    """Many questions share an image, so ``image_index`` repeats. The backward of plain indexing
    (``features[index]``) adds the repeated rows' gradients with atomic float adds from two
    threads, whose order follows the machine's load: measured, 267 different gradients in 300
    repeats with one busy core (and two default runs of one seed that parted in 03). Through
    ``fusion.rows`` (``index_select``) the gradient is the same bit for bit every time."""
    import hashlib
    import subprocess
    import sys

    from mbmlab.models.fusion import Media, rows, scatter

    torch.manual_seed(0)
    features = torch.randn(8, 4, 256, requires_grad=True)
    index = torch.randint(0, 8, (64,))
    media = Media("image", features, index, token_id=5)
    input_ids = torch.zeros(64, 6, dtype=torch.long)
    input_ids[:, 1:5] = 5
    upstream = torch.randn(64, 6, 256)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # the load that reordered the adds
    try:
        seen = set()
        for _ in range(150):
            features.grad = None
            out = scatter(torch.zeros(64, 6, 256), input_ids, media) if how == "scatter" else rows(media)
            out.backward(upstream if how == "scatter" else upstream[:, 1:5])
            seen.add(hashlib.sha256(features.grad.numpy().tobytes()).hexdigest())
    finally:
        busy.kill()
        torch.set_num_threads(threads)
    assert len(seen) == 1, f"{len(seen)} different gradients in 150 repeats"


def ctc_data(processor, seed=0):
    """``data`` with each clip's frame mask and transcript (what 03 passes for the CTC loss)."""
    pixels = processor.pixel_values(family.pictures(2, seed))
    out = processor.feature_extractor([c for c in family.clips(3, seed)], sampling_rate=16000, return_tensors="pt",
                                      padding="max_length", truncation=True, return_attention_mask=True)
    return fused.TaskUnits(task_examples(IMAGES, SPEECH), processor, pixels, out["input_features"],
                           out["attention_mask"], SPEECH["transcript"])


def test_the_ctc_loss_joins_the_decoders_with_its_weight(tokenizer):
    from mbmlab.models import ctc

    model, processor = family.build(tokenizer, ctc_characters=ctc.CHARACTERS, ctc_weight=0.5)
    units_ = ctc_data(processor)
    batch = fused.FusionCollator(processor, ctc.CHARACTERS)([units_[i] for i in range(len(units_))])
    assert batch["frame_mask"].shape == (3, batch["input_features"].shape[2])
    # the clips in the batch's order (image b's spoken question first, then the ASR units): the
    # question (26 characters spelt), "a blue circle" (13), "hello there" (11)
    assert batch["ctc_target_lengths"].tolist() == [26, 13, 11]
    with torch.no_grad():
        joint = model(**batch).loss
        decoder = model(**{k: v for k, v in batch.items() if not k.startswith("ctc_")}).loss
        frames = model.model.get_audio_frames(batch["input_features"])
        alone = ctc.ctc_loss(model.model.audio_ctc_head(frames), ctc.frame_lengths(batch["frame_mask"], frames.shape[1]),
                             batch["ctc_targets"], batch["ctc_target_lengths"])
    assert joint.item() == pytest.approx(decoder.item() + 0.5 * alone.item(), rel=1e-5)
    model.train()
    model(**batch).loss.backward()
    assert model.model.audio_ctc_head.proj.weight.grad.abs().sum() > 0  # the head learns in training
    assert set(model.part("audio_tower").parameters()) >= set(model.model.audio_ctc_head.parameters())


def test_spec_augment_masks_only_training_batches(tokenizer, monkeypatch):
    from mbmlab.models import ctc

    model, processor = family.build(tokenizer, spec_augment=True)
    units_ = ctc_data(processor)
    batch = fused.FusionCollator(processor)([units_[i] for i in range(len(units_))])
    masked = []
    real = ctc.spec_augment
    monkeypatch.setattr(ctc, "spec_augment", lambda *a, **k: masked.append(1) or real(*a, **k))
    with torch.no_grad():
        model.eval()
        first, again = model(**batch).logits, model(**batch).logits
        assert not masked and torch.equal(first, again)  # evaluation sees the clips as they are
        model.train()
        model(**batch)
    assert masked == [1]
    plain, _ = family.build(tokenizer, spec_augment=False)
    plain.train()
    masked.clear()
    plain(**batch)
    assert not masked
    warps = []
    real_warp = ctc.vocal_tract_perturb
    monkeypatch.setattr(ctc, "vocal_tract_perturb", lambda f, w, generator=None: warps.append(w) or real_warp(f, w, generator))
    warped, _ = family.build(tokenizer, spec_augment=True, vtlp_warp=0.1)
    warped.eval()
    with torch.no_grad():
        warped(**batch)
    assert not warps  # evaluation: no warp either
    warped.train()
    warped(**batch)
    assert warps == [0.1]  # the config's warp reaches the training batches' augmentation


def test_teacher_forced_exactness_is_what_greedy_decoding_gives(tokenizer, tmp_path):
    """``score_rows`` against ``generate`` (greedy, KV cache, left padding): a model trained until
    it answers some rows right and others not; a row is ``exact`` exactly when generation gives its
    target, and its ``prediction`` starts what generation gave. (Mutations that fail here: the
    logits not shifted against the labels; the prediction cut before its first wrong token. EOS
    left out of the scored positions passes here — this model stops where it should — and fails
    the hand case below.)"""
    from mbmlab.metrics.generate import generate

    model, processor = family.build(tokenizer, "gpt2", "resnet")
    units_ = data(processor)
    fused.train_stages(model, units_, fused.FusionCollator(processor), fused.stages(0, 0, 12, 1e-2, fused.PARTS),
                       tmp_path, **run_args())
    rows = fused.score_rows(model, units_, fused.FusionCollator(processor), batch_size=2)
    scored = [e for u in units_.units for e in u.examples if e.task in fused.SCORED_TASKS]
    assert len(rows) == len(scored) == 7 and rows["task"].tolist() == [e.task for e in scored]
    said = generate(model, processor, scored, units_.pixel_values, units_.input_features, max_new_tokens=12,
                    progress=False)
    truth = [e.target for e in scored]
    assert rows["exact"].tolist() == [s == t for s, t in zip(said, truth)]
    assert 0 < rows["exact"].sum() < len(rows), said  # both kinds present, or the test tells nothing
    for prediction, text, target, exact in zip(rows["prediction"], said, truth, rows["exact"]):
        assert text.startswith(prediction), (prediction, text)
        # a wrong row's prediction holds its first wrong token: not the target's start, unless it stopped there
        assert exact or not target.startswith(prediction) or text == prediction, (prediction, text, target)
    model.train()
    fused.score_rows(model, units_, fused.FusionCollator(processor), batch_size=2)
    assert model.training


def test_the_best_epoch_on_validation_is_the_one_kept(tokenizer, tmp_path, monkeypatch):
    """Three stage-2 epochs scored 0.5, 0.9, 0.7 (``score_rows`` replaced): the model ends with the
    weights it had after epoch 2, ``epochs.csv`` lists all three, ``record_epoch_choice`` says so.
    (Mutations, each fails: ``restore`` not called; a worse score also saving.)"""

    import pandas as pd
    from transformers import TrainerCallback

    scores = iter([0.5, 0.9, 0.7])
    monkeypatch.setattr(fused, "score_rows", lambda *a, **k: pd.DataFrame(
        {"task": ["vqa"], "image": [0], "question": ["q"], "answer": ["a"], "prediction": ["a"],
         "exact": [next(scores)]}))
    seen = []

    class Snapshot(TrainerCallback):
        def on_epoch_end(self, args, state, control, model=None, **kwargs):
            seen.append({k: v.clone() for k, v in model.state_dict().items()})

    model, processor = family.build(tokenizer, "gpt2", "resnet")
    units_ = data(processor)
    trainers = fused.train_stages(model, units_, fused.FusionCollator(processor), fused.stages(0, 0, 3, 1e-2, fused.PARTS),
                                  tmp_path, eval_set=units_, keep_best=True, callbacks={"stage2": [Snapshot()]},
                                  **run_args())
    assert len(seen) == 3 and trainers.choice.stage == "stage2" and trainers.choice.kept["epoch"] == 2.0
    final = model.state_dict()
    assert all(torch.equal(final[k], seen[1][k]) for k in final)
    assert any(not torch.equal(final[k], seen[2][k]) for k in final)
    assert trainers.choice.scored["score"].tolist() == [0.5, 0.9, 0.7]
    said = fused.record_epoch_choice(trainers, tmp_path)
    assert "kept: epoch 2, not the last (3)" in said
    assert pd.read_csv(tmp_path / "fuse_epochs.csv")["epoch"].tolist() == [1.0, 2.0, 3.0]
    assert "warning" not in said
    blind = fused.TrainedStages()
    blind.choice = fused.EpochChoice("stage2", {"epoch": 1.0, "score": 0.9, "vqa/exact": 0.9, "vqa/blind_texts": 3},
                                     pd.DataFrame([{"epoch": 1.0, "step": 5, "score": 0.9, "vqa/exact": 0.9,
                                                    "vqa/blind_texts": 3}]))
    (tmp_path / "blind").mkdir()
    assert "warning: at the kept epoch 3 validation question texts get one answer" in \
        fused.record_epoch_choice(blind, tmp_path / "blind")
    assert json.loads((tmp_path / "blind" / "metrics.json").read_text())["fuse/validation/vqa/blind_texts"] == 3
    # without keep_best no epoch is scored and the last is kept
    model, processor = family.build(tokenizer, "gpt2", "resnet")
    plain = fused.train_stages(model, units_, fused.FusionCollator(processor), fused.stages(0, 0, 1, 1e-2, fused.PARTS),
                               tmp_path / "plain", eval_set=units_, **run_args())
    assert plain.choice is None and "kept its last epoch" in fused.record_epoch_choice(plain, tmp_path)


def test_exactness_needs_every_target_token_and_the_end(tokenizer):
    """A hand case: a stand-in model whose argmax is the next input token everywhere (every target
    right), except in one row at its EOS (it says the answer and goes on with a space) and in
    another at its second target token (it says " red" there). Only the untouched rows are exact;
    the row that goes on predicts the whole answer; the other's prediction is its first token and
    " red", where greedy decoding would part from the target. (Mutations, each fails: EOS left out
    of the scored positions; the logits not shifted; the prediction cut before its wrong token.)"""
    from types import SimpleNamespace

    _, processor = family.build(tokenizer)
    units_ = data(processor)
    examples = [e for u in units_.units for e in u.examples if e.task in fused.SCORED_TASKS]
    targets = [processor.target_ids([e.target])[0] for e in examples]  # target tokens and EOS
    goes_on = next(k for k, e in enumerate(examples) if e.target == "circle")
    wrong_second = next(k for k, t in enumerate(targets) if len(t) >= 3)
    space, red = tokenizer.convert_tokens_to_ids("Ġ"), tokenizer(" red")["input_ids"][0]

    class Stub(torch.nn.Module):
        def forward(self, input_ids, attention_mask, **inputs):
            assert input_ids.shape[0] == len(examples)  # only the scored rows, in order
            logits = torch.zeros(*input_ids.shape, len(tokenizer))
            logits[:, :-1].scatter_(-1, input_ids[:, 1:].unsqueeze(-1), 1.0)
            last = attention_mask.sum(1) - 1  # right padding: the EOS position of each row
            logits[goes_on, last[goes_on] - 1] = 0.0
            logits[goes_on, last[goes_on] - 1, space] = 1.0
            at = last[wrong_second] - len(targets[wrong_second]) + 1  # predicts the second target token
            logits[wrong_second, at] = 0.0
            logits[wrong_second, at, red] = 1.0
            return SimpleNamespace(logits=logits)

    frame = fused.score_rows(Stub(), units_, fused.FusionCollator(processor), batch_size=len(units_))
    assert frame["exact"].tolist() == [k not in (goes_on, wrong_second) for k in range(len(examples))]
    assert frame.loc[goes_on, "prediction"] == "circle"
    assert frame.loc[wrong_second, "prediction"] == tokenizer.decode([targets[wrong_second][0], red]).strip()
    assert all(frame.loc[k, "prediction"] == e.target for k, e in enumerate(examples) if k not in (goes_on, wrong_second))
