"""PocketSphinx beside the fused model (mbmlab.analyses.reference_asr): what it is fed, which clips
it hears, and that it really recognises a spoken sentence."""
import io

import numpy as np
import pytest

from mbmlab.analyses import reference_asr


def test_sample_is_seeded_distinct_sorted_and_all_when_asked_for_more():
    chosen = reference_asr.sample(100, 10, seed=3)
    assert chosen == reference_asr.sample(100, 10, seed=3) != reference_asr.sample(100, 10, seed=4)
    assert len(set(chosen)) == 10 and chosen == sorted(chosen) and all(0 <= i < 100 for i in chosen)
    assert reference_asr.sample(5, 10, seed=0) == reference_asr.sample(5, 0, seed=0) == [0, 1, 2, 3, 4]


def test_pcm16_scales_clips_and_rounds_little_endian():
    raw = reference_asr.pcm16(np.array([0.0, 1.0, -1.0, 0.5, 2.0]))
    assert np.frombuffer(raw, dtype="<i2").tolist() == [0, 32767, -32767, 16384, 32767]


def test_pocketsphinx_recognises_a_clearly_spoken_sentence():
    pytest.importorskip("pocketsphinx")
    from torchcodec.decoders import AudioDecoder

    from mbmlab.data.speech import Utterance, synthesize
    from mbmlab.metrics.intervals import per_clip_edits

    wav = synthesize(Utterance("what color is the triangle?", "flite-awb-m"))
    heard = reference_asr.transcribe([AudioDecoder(io.BytesIO(wav).getvalue())])
    edits, words = per_clip_edits(["what color is the triangle?"], heard)
    assert edits.sum() / words.sum() <= 0.2, heard  # one word wrong at most; garbage input gives WER near 1
