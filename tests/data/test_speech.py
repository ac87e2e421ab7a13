"""The speech source with the real engines (espeak-ng, flite: Debian packages ./workbench installs)."""
from collections import Counter

import numpy as np
import pytest

from mbmlab.data import speech
from mbmlab.data.clean import SAMPLE_RATE, clean_audio, decode_audio


def test_at_least_six_voices_over_two_engines_with_labels():
    voices = speech.VOICES.values()
    assert len(voices) >= 6 and {v.engine for v in voices} == {"espeak-ng", "flite"}
    assert {v.gender for v in voices} == {"female", "male"} and len({v.accent for v in voices}) >= 3


@pytest.mark.parametrize("voice", list(speech.VOICES))
def test_every_voice_speaks_16k_mono(voice):
    wav = speech.synthesize(speech.Utterance("what color is the circle?", voice))
    samples, rate, channels = decode_audio(wav)
    assert (rate, channels) == (SAMPLE_RATE, 1)
    cleaned = clean_audio(wav, 0.2, 30, -60)  # not silent, sensible length
    assert 0.5 < cleaned.duration < 5


def test_cache_makes_a_rerun_synthesise_nothing(tmp_path):
    utterances = [speech.Utterance(t, v) for t in ("a red circle", "is there a star?")
                  for v in ("espeak-us-f", "flite-slt-f")]
    first = speech.SpeechCache(tmp_path)
    made = speech.synthesize_all(utterances, first, workers=2, progress=False)
    assert (first.misses, first.hits) == (4, 0)
    again = speech.SpeechCache(tmp_path)
    assert speech.synthesize_all(utterances, again, workers=2, progress=False) == made
    assert (again.misses, again.hits) == (0, 4)


def test_rate_and_pitch_change_the_clip_and_the_key():
    base = speech.Utterance("how many shapes are there?", "espeak-gb-m")
    fast = speech.Utterance(base.text, base.voice, rate=1.4)
    assert len({u.key({"espeak-ng": "1"}) for u in (base, fast)}) == 2
    for voice in ("espeak-gb-m", "flite-awb-m"):
        slow = clean_audio(speech.synthesize(speech.Utterance(base.text, voice, rate=0.7)), 0.2, 30, -60)
        quick = clean_audio(speech.synthesize(speech.Utterance(base.text, voice, rate=1.4)), 0.2, 30, -60)
        assert quick.duration < 0.8 * slow.duration, voice


def test_noise_has_the_requested_snr():
    clean = speech.synthesize(speech.Utterance("a large blue star", "flite-rms-m"))
    noisy = speech.add_noise(clean, 10.0, np.random.default_rng(0))
    x, _, _ = decode_audio(clean)
    y, _, _ = decode_audio(noisy)
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((y - x).astype(np.float64) ** 2))
    assert abs(snr - 10.0) < 0.5


def test_missing_engine_names_the_debian_package(monkeypatch):
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(speech.EngineMissingError, match="apt-get install flite"):
        speech.engine_version("flite")


def test_plan_balances_voices_and_follows_image_splits():
    rows = {split: [{"image_id": f"{split}-{i}", "caption": f"a red circle {i}",
                     "questions": ["q1?", "q2?", "q3?"], "answers": ["a", "b", "c"],
                     "question_types": ["t"] * 3} for i in range(n)]
            for split, n in (("train", 30), ("validation", 5), ("test", 10))}
    plan = speech.SpeechPlan(voices=tuple(speech.VOICES), per_image=2, max_clips=40)
    clips = speech.plan_clips(rows, plan, seed=0)
    by_split = Counter(c["split"] for c in clips)
    assert by_split == {"train": 40, "validation": 10, "test": 20}
    assert all(c["image_id"].startswith(c["split"]) for c in clips)
    kinds = Counter(c["kind"] for c in clips if c["split"] == "test")
    assert kinds == {"caption": 10, "question": 10}  # the caption first, then one question
    voices = Counter(c["voice"] for c in clips if c["split"] == "train")
    assert max(voices.values()) - min(voices.values()) <= 1
    assert speech.plan_clips(rows, plan, seed=0) == clips
    with pytest.raises(ValueError, match="unknown voices"):
        speech.plan_clips(rows, speech.SpeechPlan(voices=("nobody",)), seed=0)


def test_every_voice_speaks_an_even_share_of_captions_and_of_questions():
    """Uncapped splits (texts in image order: caption, question, caption, …) with an even number of
    voices: each voice speaks as many captions as questions (±1). Mutation: round-robin over the
    texts in order (the old plan, which gave four of eight voices only questions in the default
    run's validation split) → fails."""
    rows = {split: [{"image_id": f"{split}-{i}", "caption": f"a red circle {i}", "questions": ["q1?", "q2?"],
                     "answers": ["a", "b"], "question_types": ["t"] * 2} for i in range(40)]
            for split in ("train", "validation")}
    voices = tuple(speech.VOICES)[:8]
    clips = speech.plan_clips(rows, speech.SpeechPlan(voices=voices, per_image=2), seed=0)
    for split in rows:
        for kind in ("caption", "question"):
            count = Counter(c["voice"] for c in clips if c["split"] == split and c["kind"] == kind)
            assert set(count) == set(voices) and max(count.values()) - min(count.values()) <= 1, (split, kind, count)


def test_speak_adds_seeded_noise_per_clip(tmp_path):
    rows = {"train": [{"image_id": "i0", "caption": "a red circle", "questions": [], "answers": [],
                       "question_types": []}]}
    plan = speech.SpeechPlan(voices=("espeak-us-m",), per_image=1, noise_snr_db=20.0)
    clips = speech.plan_clips(rows, plan, seed=0)
    cache = speech.SpeechCache(tmp_path)
    noisy = speech.speak(clips, plan, cache, seed=0, progress=False)[0]["audio"]
    assert noisy == speech.speak(clips, plan, cache, seed=0, progress=False)[0]["audio"]
    assert noisy != speech.speak(clips, plan, cache, seed=1, progress=False)[0]["audio"]
    clean = speech.speak(clips, speech.SpeechPlan(voices=("espeak-us-m",)), cache, seed=0, progress=False)[0]["audio"]
    x, _, _ = decode_audio(clean)
    y, _, _ = decode_audio(noisy)
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((y - x).astype(np.float64) ** 2))
    assert abs(snr - 20.0) < 0.5


def test_held_out_voices_speak_only_validation_and_test_clips():
    rows = {split: [{"image_id": f"{split}-{i}", "caption": f"a red circle {i}", "questions": ["q1?"],
                     "answers": ["a"], "question_types": ["t"]} for i in range(n)]
            for split, n in (("train", 40), ("validation", 20), ("test", 40))}
    heldout = ("espeak-carib-m", "flite-rms-m")
    clips = speech.plan_clips(rows, speech.SpeechPlan(voices=tuple(speech.VOICES), heldout_voices=heldout), seed=0)
    voices = {split: Counter(c["voice"] for c in clips if c["split"] == split) for split in ("train", "validation", "test")}
    assert not set(heldout) & set(voices["train"])
    assert set(voices["train"]) == set(speech.VOICES) - set(heldout)
    # validation holds them too, so what is chosen there answers for a speaker never trained on
    for split in ("validation", "test"):
        assert set(voices[split]) == set(speech.VOICES), split
    with pytest.raises(ValueError, match="not among the voices"):
        speech.plan_clips(rows, speech.SpeechPlan(voices=("espeak-us-m",), heldout_voices=("flite-rms-m",)), seed=0)
    with pytest.raises(ValueError, match="every voice is held out"):
        speech.plan_clips(rows, speech.SpeechPlan(voices=("espeak-us-m",), heldout_voices=("espeak-us-m",)), seed=0)


def test_word_sequences_swap_words_for_words_of_the_texts():
    import random

    texts = ["Is there a red circle?", "what is the blue shape in the image?"]
    words = {"is", "there", "a", "red", "circle", "what", "the", "blue", "shape", "in", "image"}
    kept = speech.word_sequences(texts, 20, random.Random(0), swap_share=0.0)
    assert set(kept) == {"is there a red circle", "what is the blue shape in the image"}  # lower case, no punctuation
    mixed = speech.word_sequences(texts, 400, random.Random(0), swap_share=1.0)
    assert {len(s.split()) for s in mixed} == {5, 8} and {w for s in mixed for w in s.split()} == words
    counts = Counter(w for s in mixed for w in s.split())
    assert min(counts.values()) > 0.6 * max(counts.values())  # uniform over the vocabulary, not the texts
    assert mixed == speech.word_sequences(texts, 400, random.Random(0), swap_share=1.0)  # seeded

    def kept_share(sentences):  # the share of words where the sentence still reads its original
        originals = [t.split() for t in kept]
        return np.mean([max(sum(a == b for a, b in zip(s.split(), o)) / len(o) for o in originals
                            if len(o) == len(s.split())) for s in sentences])

    assert kept_share(mixed) < 0.3
    assert 0.6 < kept_share(speech.word_sequences(texts, 400, random.Random(1), swap_share=0.3)) < 0.85
    with pytest.raises(ValueError, match="share"):
        speech.word_sequences(texts, 1, random.Random(0), swap_share=1.5)


def test_tts_voices_are_the_synthesised_voices_of_a_split_only():
    """A split's TTS voices, sorted and once each; a recorded speaker is none of them (02 then
    makes no word-sequence clips)."""
    from mbmlab.data.voices import tts_voices

    split = {"voice": ["flite-slt-f", "espeak-us-m", "flite-slt-f", "speaker-07"]}
    assert tts_voices(split) == ["espeak-us-m", "flite-slt-f"]
    assert tts_voices({"voice": ["speaker-07"]}) == []
