"""Each cleaning rule on deliberately broken inputs, and what the drop report says about it."""
import numpy as np
import pytest

from mbmlab.data.clean import (SAMPLE_RATE, Cleaner, DropReport, Dropped, clean_audio, clean_image, clean_text,
                               decode_audio)
from helpers import png, wav


def image_record(rid, data, caption="a red square", questions=(), answers=()):
    return {"image_id": rid, "source": "test", "image": data, "caption": caption, "colour": "", "shape": "",
            "objects": [], "questions": list(questions), "answers": list(answers),
            "question_types": ["t"] * len(questions)}


def clip_record(rid, data, transcript="hello there"):
    return {"clip_id": rid, "image_id": "", "source": "test", "audio": data, "transcript": transcript}


@pytest.mark.parametrize("value, reason", [
    ("", "empty text"), ("  \t\n ", "empty text"), (None, "empty text"),
    (b"caf\xe9", "undecodable text"),  # Latin-1, not UTF-8
])
def test_bad_text_is_refused_with_its_reason(value, reason):
    with pytest.raises(Dropped) as caught:
        clean_text(value)
    assert caught.value.reason == reason


def test_text_is_normalised():
    assert clean_text("  a   red\tcircle \n") == "a red circle"
    assert clean_text("cafe\u0301") == "caf\u00e9"  # NFC: e + combining accent → é
    assert clean_text("caf\u00e9".encode()) == "caf\u00e9"


def test_truncated_and_empty_images_are_undecodable():
    good = png()
    for data in (good[: len(good) // 2], b"", b"not an image at all"):
        with pytest.raises(Dropped) as caught:
            clean_image(data, min_size=16)
        assert caught.value.reason == "undecodable image"


def test_small_images_are_refused_and_odd_modes_converted():
    with pytest.raises(Dropped, match="image too small"):
        clean_image(png(size=(8, 40)), min_size=16)
    for mode in ("L", "P", "RGBA", "CMYK"):
        cleaned = clean_image(png(mode=mode, fmt="TIFF" if mode == "CMYK" else "PNG"), min_size=16)
        assert cleaned.converted_from == mode
    assert clean_image(png(), 16).converted_from == ""


def test_same_picture_in_two_formats_has_one_digest():
    assert clean_image(png(fmt="PNG"), 16).digest == clean_image(png(fmt="BMP"), 16).digest
    assert clean_image(png(), 16).digest != clean_image(png(colour=(0, 0, 255)), 16).digest


def test_audio_rules():
    with pytest.raises(Dropped, match="undecodable audio"):
        clean_audio(b"", 0.2, 30, -60)  # a 0-byte WAV
    with pytest.raises(Dropped, match="silent audio"):
        clean_audio(wav(amplitude=0.0), 0.2, 30, -60)  # an all-zero WAV
    with pytest.raises(Dropped, match="audio too short"):
        clean_audio(wav(seconds=0.1), 0.2, 30, -60)
    with pytest.raises(Dropped, match="audio too long"):
        clean_audio(wav(seconds=3.0), 0.2, 2.0, -60)
    with pytest.raises(Dropped, match="undecodable audio"):
        clean_audio(wav()[:30], 0.2, 30, -60)  # a header cut short


def test_audio_is_resampled_to_16k_mono():
    cleaned = clean_audio(wav(seconds=1.0, rate=44_100, channels=2), 0.2, 30, -60)
    assert cleaned.resampled_from == 44_100 and cleaned.downmixed_from == 2
    samples, rate, channels = decode_audio(cleaned.wav)
    assert (rate, channels) == (SAMPLE_RATE, 1)
    assert abs(len(samples) - SAMPLE_RATE) <= 32 and abs(cleaned.duration - 1.0) < 0.01
    # still a 440 Hz tone after resampling
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(samples) - 440) < 3


def test_cleaner_records_every_drop_and_change():
    drops = DropReport()
    cleaner = Cleaner(drops)
    rows = [
        cleaner.image_record(image_record("ok", png())),
        cleaner.image_record(image_record("dup", png(fmt="BMP"))),  # same pixels as "ok"
        cleaner.image_record(image_record("trunc", png()[:40])),
        cleaner.image_record(image_record("none", None)),
        cleaner.image_record(image_record("grey", png(colour=(90, 90, 90), mode="L"))),
        cleaner.image_record(image_record("notext", png(colour=(0, 0, 200)), caption="   ")),
        cleaner.image_record(image_record("qa", png(colour=(0, 200, 0)), caption="",
                                          questions=["what colour?", ""], answers=["green", "red"])),
        cleaner.audio_record(clip_record("a-ok", wav())),
        cleaner.audio_record(clip_record("a-zero-bytes", b"")),
        cleaner.audio_record(clip_record("a-silent", wav(amplitude=0.0))),
        cleaner.audio_record(clip_record("a-dup", wav())),
        cleaner.audio_record(clip_record("a-no-text", wav(freq=300.0), transcript=" ")),
        cleaner.audio_record(clip_record("a-44k", wav(rate=44_100, freq=500.0))),
    ]
    kept = [r["image_id"] if "image_id" in r and "clip_id" not in r else r["clip_id"] for r in rows if r]
    assert kept == ["ok", "grey", "qa", "a-ok", "a-44k"]
    assert drops.counts() == {
        "caption: empty text": 1,
        "question: empty text": 1,
        "record: duplicate audio": 1,
        "record: duplicate image": 1,
        "record: empty text": 1,
        "record: missing image": 1,
        "record: missing text": 1,
        "record: silent audio": 1,
        "record: undecodable audio": 1,
        "record: undecodable image": 1,
    }
    assert drops.change_counts() == {"converted L to RGB": 1, "resampled 44100 Hz to 16000 Hz": 1}
    qa_row = rows[6]
    assert qa_row["questions"] == ["what colour?"] and qa_row["answers"] == ["green"]
    assert {e["id"] for e in drops.entries} >= {"dup", "trunc", "none", "notext", "qa#q1", "a-zero-bytes"}
