"""Issue 19's speech path against the one before it, in a tiny run.

The old path: the audio tower learns only through the GPT's loss in fusion (``audio_ctc_epochs=0``,
``ctc_weight=0``, ``asr_ctc_weight=0``). The new one: 02's CTC pretraining of the tower with its
character head, CTC kept as an auxiliary loss in fusion (``ctc_weight``) and transcripts decoded
jointly with the head (``asr_ctc_weight``). Both start from the same fused model, train the same
fusion steps on the same tone clips, and are scored as 04 scores them (``generate``, then jiwer's
WER). The old path learns how many letters a clip has, not which ("d d d" for "b a b c": WER 0.79
here); the new one spells most of them (0.46).

Mutations that make it fail: fusion's CTC term dropped (``loss = loss`` in
``MbmForConditionalGeneration.forward``: the new path's WER equals the old one's); 02's CTC loss
multiplied by 0 (the tower pretrained on nothing: 0.89).
"""
import datasets
import torch

import family
from helpers import tone_clips
from mbmlab.data.tasks import task_examples
from mbmlab.metrics.asr import error_rates
from mbmlab.metrics.generate import generate
from mbmlab.models import audio, ctc
from mbmlab.training import ctc as ctc_training
from mbmlab.training import fused


PARTS = ["audio_projector", "language_model", "audio_tower"]  # stage 2 of the default, no image here


def speech_split(n: int, seed: int):
    """(clips as 02 sees them, task examples as 03 sees them): ``n`` tone clips of letter words, each
    letter a word ("c a d")."""
    clips = tone_clips(n, seed, spaced=True)
    rows = datasets.Dataset.from_dict({"image_id": [""] * n, "transcript": clips.transcripts,
                                       "kind": ["transcript"] * n, "answer": [""] * n, "question_type": [""] * n})
    return clips, task_examples(None, rows, ("asr",))


def fuse_and_transcribe(model, processor, train, test, ctc_weight, asr_ctc_weight, out):
    clips, examples = train
    units = fused.TaskUnits(examples, processor, None, clips.features, clips.frame_mask, clips.transcripts)
    collator = fused.FusionCollator(processor, model.config.ctc_characters if ctc_weight else "")
    fused.train_stages(model, units, collator, fused.stages(0, 0, 12, 3e-3, PARTS), out, batch_size=8, seed=0,
                       disable_tqdm=True, logging_steps=50, report_to=[])
    clips, examples = test
    predictions = generate(model, processor, examples, None, clips.features, max_new_tokens=12, progress=False,
                           frame_mask=clips.frame_mask, ctc_weight=asr_ctc_weight)
    return error_rates(clips.transcripts, predictions)["wer"]


def test_the_new_speech_path_transcribes_better_than_the_old(tokenizer, tmp_path):
    train, validation, test = speech_split(96, 0), speech_split(24, 1), speech_split(24, 2)
    old, processor = family.build(tokenizer, "gpt2", "resnet", seed=0)
    new, _ = family.build(tokenizer, "gpt2", "resnet", seed=0, ctc_characters=ctc.CHARACTERS, ctc_weight=0.3)
    new.load_state_dict(old.state_dict(), strict=False)  # the same start, but for the tower and its head
    encoder = audio.new_audio_encoder(family.SECONDS, 32, 1, 2, seed=0)
    encoder.load_state_dict(old.model.audio_tower.state_dict())
    pretrained, *_ = ctc_training.pretrain_ctc(
        encoder, {"train": train[0], "validation": validation[0], "test": test[0]}, tmp_path / "ctc", epochs=40,
        batch_size=8, learning_rate=5e-3, seed=0, augment=False)
    new.model.audio_tower.load_state_dict(pretrained.encoder.state_dict())
    new.model.audio_ctc_head.load_state_dict(pretrained.head.state_dict())
    wer_old = fuse_and_transcribe(old.train(), processor, train, test, 0.0, 0.0, tmp_path / "old")
    wer_new = fuse_and_transcribe(new.train(), processor, train, test, 0.3, 0.3, tmp_path / "new")
    assert wer_new < wer_old, (wer_new, wer_old)
