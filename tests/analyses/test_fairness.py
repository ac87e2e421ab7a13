"""Speech fairness: fairlearn's MetricFrame per group, checked on hand-worked cases and against
the per-clip counts the intervals use."""
import numpy as np
import pandas as pd
import pytest

from mbmlab.analyses import fairness


def asr_frame():
    return pd.DataFrame({"reference": ["a b c d", "a b", "e f"], "prediction": ["a b c d", "a x", "e f"],
                         "voice": ["v1", "v2", "v2"], "gender": ["f", "m", "m"]})


def test_wer_disparity_hand_worked():
    # v1: 0 edits over 4 words → 0; v2: 1 edit ("x" for "b") over 2 + 2 words → 0.25.
    # difference 0.25 − 0 = 0.25; ratio smallest / largest = 0 / 0.25 = 0
    table, summary = fairness.disparity(asr_frame(), "voice", "wer")
    assert dict(zip(table["voice"], table["wer"])) == {"v1": 0.0, "v2": pytest.approx(0.25)}
    assert dict(zip(table["voice"], table["clips"])) == {"v1": 1, "v2": 2}
    assert summary["difference"] == pytest.approx(0.25) and summary["ratio"] == 0.0
    assert summary["difference/ci95_low"] <= summary["difference"] + 1e-12


def test_spoken_accuracy_disparity_hand_worked():
    # m: 2 of 2 right → 1.0; f: 1 of 2 → 0.5; difference 0.5, ratio 0.5 / 1.0 = 0.5
    frame = pd.DataFrame({"answer": ["red", "circle", "yes", "no"], "prediction": ["Red", "circle", "yes", "yes"],
                          "gender": ["m", "m", "f", "f"]})
    table, summary = fairness.disparity(frame, "gender", "exact_match")
    assert dict(zip(table["gender"], table["exact_match"])) == {"f": 0.5, "m": 1.0}
    assert summary["difference"] == pytest.approx(0.5) and summary["ratio"] == pytest.approx(0.5)


def test_metric_frame_agrees_with_the_per_clip_counts():
    rng = np.random.default_rng(0)
    words = ["red", "blue", "circle", "is", "there", "a"]
    refs = [" ".join(rng.choice(words, rng.integers(2, 6))) for _ in range(60)]
    hyps = [" ".join(w if rng.random() > 0.3 else "x" for w in r.split()) for r in refs]
    frame = pd.DataFrame({"reference": refs, "prediction": hyps, "accent": rng.choice(["us", "gb", "scot"], 60)})
    table, summary = fairness.disparity(frame, "accent", "wer")
    num, den = fairness.per_item(frame, "wer")
    for accent, wer in zip(table["accent"], table["wer"]):
        mask = (frame["accent"] == accent).to_numpy()
        assert wer == pytest.approx(num[mask].sum() / den[mask].sum())
    assert summary["difference/ci95_low"] < summary["difference"] < summary["difference/ci95_high"]


def test_speech_fairness_skips_single_valued_and_missing_groups():
    tables, metrics = fairness.speech_fairness(asr_frame(), None)
    assert set(tables) == {("asr", "voice"), ("asr", "gender")}  # no accent/engine columns
    assert "fairness/asr/voice/difference" in metrics and not any(k.startswith("fairness/spoken_vqa") for k in metrics)
    with pytest.raises(ValueError, match="unknown metric"):
        fairness.per_item(asr_frame(), "bleu")


def test_a_gap_between_equal_voices_is_not_established():
    """Every voice transcribes the same share of words wrong (each clip 1 edit in 4 words): the
    best − worst interval still sits above 0 on resampling noise, but the permutation test calls
    no difference; a voice that gets every word wrong is a difference."""
    rng = np.random.default_rng(0)
    voices = np.repeat(["a", "b", "c"], 40)
    words = ["one two three four"] * 120
    wrong = ["one two three five"] * 120
    prediction = [w if rng.random() < 0.5 else r for w, r in zip(wrong, words)]
    frame = pd.DataFrame({"reference": words, "prediction": prediction, "voice": voices})
    _, summary = fairness.disparity(frame, "voice", "wer")
    assert summary["difference/ci95_low"] > 0 and not summary["difference/established"]
    assert summary["difference/p_value"] > 0.05
    frame.loc[frame["voice"] == "c", "prediction"] = "six seven eight nine"
    _, summary = fairness.disparity(frame, "voice", "wer")
    assert summary["difference/established"] and summary["difference/p_value"] < 0.01
