"""02's CTC pretraining learns to spell: on clips where each letter is a tone of its own pitch, the
encoder and its head go from spelling nothing (random init) to spelling most letters right."""
import pytest
import torch

from helpers import tone_clips
from mbmlab.models import audio
from mbmlab.training import ctc as ctc_training

def test_ctc_pretraining_learns_to_spell_and_keeps_its_head(tmp_path):
    clips = {"train": tone_clips(96, 0), "validation": tone_clips(24, 1), "test": tone_clips(24, 2)}
    encoder = audio.new_audio_encoder(1, 32, 1, 2, seed=0)
    model, trainer, before, after = ctc_training.pretrain_ctc(
        encoder, clips, tmp_path / "ctc", epochs=40, batch_size=8, learning_rate=5e-3, seed=0, augment=False)
    assert before["cer"] > 0.8  # random init spells (almost) nothing
    assert after["cer"] < 0.1, after
    evaluations = [r for r in trainer.state.log_history if "eval_loss" in r]
    assert len(evaluations) == 10 and all("eval_wer" in r for r in evaluations)  # for the best-weights pick
    model.save_head(tmp_path / "head.safetensors")
    head = ctc_training.load_head(tmp_path / "head.safetensors")
    assert head.characters == model.head.characters
    assert torch.equal(head.proj.weight, model.head.proj.weight)


def test_ctc_model_masks_features_only_while_training(monkeypatch):
    from mbmlab.models import ctc

    calls = []
    monkeypatch.setattr(ctc, "spec_augment", lambda x, m, **k: calls.append(1) or x)
    clips = tone_clips(4, 3)
    model = ctc_training.CtcModel(audio.new_audio_encoder(1, 32, 1, 2, seed=0), augment=True)
    batch = ctc_training.ClipCollator()([clips[i] for i in range(4)])
    model.eval()
    model(**batch)
    ctc_training.transcribe(model, clips)
    assert not calls
    model.train()
    model(**batch)
    assert calls == [1]
    assert ctc_training.CtcModel(audio.new_audio_encoder(1, 32, 1, 2, seed=0), augment=False).train()(**batch)["loss"] > 0
    assert calls == [1]  # augment=False: no masking even in training
    warps = []
    monkeypatch.setattr(ctc, "vocal_tract_perturb", lambda f, w, generator=None: warps.append(w) or f)
    warped = ctc_training.CtcModel(audio.new_audio_encoder(1, 32, 1, 2, seed=0), augment=True, warp=0.1)
    warped.eval()(**batch)
    assert not warps
    warped.train()(**batch)
    assert warps == [0.1]  # 02's vtlp_warp reaches the training batches only


def test_pretraining_refuses_transcripts_it_cannot_spell(tmp_path, capsys):
    """…and, on recorded speech (no TTS voice to say them), goes on without word-sequence clips and
    says why, where the default asks for them."""
    import datasets

    speech = {s: datasets.Dataset.from_dict({"transcript": ["naïve café"], "duration": [1.0], "voice": ["user"]})
              for s in ("train", "validation", "test")}
    params = {"audio_encoder": "", "audio_dim": 32, "audio_layers": 1, "audio_heads": 2, "seed": 0,
              "audio_ctc_epochs": 1.0, "audio_ctc_word_sequences": 5}
    with pytest.raises(ValueError, match="audio_ctc_epochs=0"):
        ctc_training.pretrain_audio_tower(tmp_path, speech, params)
    assert capsys.readouterr().out.startswith("no word-sequence clips (audio_ctc_word_sequences=5): no training clip")


def test_word_sequence_clips_are_spoken_by_the_training_voices_only(tmp_path, monkeypatch, capsys):
    """02's extra CTC clips: ``count`` new sentences of the training words, each voice of the
    training clips in turn (a held-out voice speaks no training clip, so never one of these),
    log-mel features as 01's clips get, a clip longer than the chunk dropped and counted; recorded
    speech (no TTS voice) is refused by name."""
    import datasets

    from mbmlab.data import speech as tts

    spoken = []
    synthesize = tts.synthesize_all
    monkeypatch.setattr(tts, "synthesize_all", lambda utterances, cache, **kw: spoken.extend(utterances)
                        or synthesize(utterances, cache, **kw))
    train = datasets.Dataset.from_dict({"transcript": ["Is there a red circle?", "a blue shape."] * 2,
                                        "voice": ["flite-kal-m", "espeak-gb-f", "espeak-gb-f", "flite-kal-m"]})
    extractor = audio.feature_extractor(3)
    clips = ctc_training.word_sequence_clips(train, 5, 0, tmp_path / "cache", extractor)
    assert len(clips) == 5 and [u.voice for u in spoken] == ["espeak-gb-f", "flite-kal-m"] * 2 + ["espeak-gb-f"]
    assert clips.transcripts == [u.text for u in spoken]
    assert {w for t in clips.transcripts for w in t.split()} <= {"is", "there", "a", "red", "circle", "blue", "shape"}
    assert clips.features.shape[1:] == (audio.MEL_BINS, 300) and clips.frame_mask.sum(1).min() > 20  # 3 s chunks, speech in each
    assert len(list((tmp_path / "cache").rglob("*.wav"))) == 5  # cached like 01's clips
    both = clips + clips
    assert len(both) == 10 and both.transcripts[5:] == clips.transcripts
    short = ctc_training.word_sequence_clips(train, 5, 0, tmp_path / "cache", audio.feature_extractor(1))
    assert 0 < len(short) < 5 and set(short.transcripts) < set(clips.transcripts)  # what does not fit 1 s is dropped
    assert capsys.readouterr().out.startswith(f"dropped {5 - len(short)} of 5 word-sequence clips longer than")
    recorded = train.map(lambda r: {"voice": "user-speaker-1"})
    with pytest.raises(ValueError, match="audio_ctc_word_sequences=0"):
        ctc_training.word_sequence_clips(recorded, 5, 0, tmp_path / "cache", extractor)
