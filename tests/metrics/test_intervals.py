"""Headline metrics with bootstrap intervals: values as hand-worked, intervals around them."""
import jiwer
import numpy as np
import pytest

from mbmlab.metrics import intervals as I


def test_accuracy_with_groups_hand_worked():
    out = I.accuracy_metrics([1, 1, 0, 1], groups=["a", "a", "b", "b"], prefix="vqa/accuracy")
    assert out["vqa/accuracy"] == 0.75 and out["vqa/accuracy/a"] == 1.0 and out["vqa/accuracy/b"] == 0.5
    assert (out["vqa/accuracy/a/ci95_low"], out["vqa/accuracy/a/ci95_high"]) == (1.0, 1.0)
    assert 0.0 <= out["vqa/accuracy/ci95_low"] < 0.75 < out["vqa/accuracy/ci95_high"] <= 1.0
    assert I.answers_correct(["Blue.", "no"], ["blue", "yes"]).tolist() == [1.0, 0.0]


def test_error_rates_hand_worked_and_against_jiwer():
    refs, hyps = ["What colour is the shape?", "a red circle"], ["what color is the shape", "a red circle"]
    out = I.error_rate_metrics(refs, hyps)
    # one substituted word ("colour" → "color") in 5 + 3 reference words
    assert out["wer"] == pytest.approx(1 / 8)
    # characters: "colour" → "color" deletes one "u"; references have 24 + 12 characters (spaces count)
    assert out["cer"] == pytest.approx(1 / 36)
    norm = lambda t: " ".join(t.lower().replace("?", "").split())  # noqa: E731
    assert out["wer"] == pytest.approx(jiwer.wer([norm(r) for r in refs], [norm(h) for h in hyps]))
    assert out["wer/ci95_low"] <= out["wer"] <= out["wer/ci95_high"]


def test_caption_intervals_surround_the_values_and_collapse_when_perfect():
    refs = {str(i): [c] for i, c in enumerate(["a blue rectangle", "a red circle", "a green triangle", "a gray circle",
                                               "a blue circle", "a red rectangle"])}
    preds = {"0": "a blue rectangle", "1": "a red triangle", "2": "a green triangle", "3": "a gray circle",
             "4": "a red circle", "5": "a red rectangle"}
    out = I.caption_metrics_with_intervals(refs, preds, resamples=50)
    from mbmlab.metrics import caption_scores, exact_match
    plain = caption_scores(refs, preds)
    for name in ("BLEU-1", "BLEU-3", "CIDEr", "ROUGE-L"):
        assert out[name] == pytest.approx(plain[name]) and out[f"{name}/ci95_low"] <= out[name] <= out[f"{name}/ci95_high"]
    assert out["exact_match"] == exact_match(refs, preds) == 4 / 6 and "METEOR/ci95_low" not in out
    perfect = I.caption_metrics_with_intervals(refs, {k: v[0] for k, v in refs.items()}, resamples=20)
    assert perfect["exact_match/ci95_low"] == perfect["exact_match/ci95_high"] == 1.0


def test_paired_difference_on_null_data_calls_a_difference_about_one_time_in_twenty():
    import numpy as np

    rng = np.random.default_rng(0)
    called, trials = 0, 200
    for t in range(trials):  # 60 images × 5 questions; both answerers right with p drawn per image (no true gap)
        p = np.repeat(rng.uniform(0.3, 0.95, 60), 5)
        a, b = rng.random(300) < p, rng.random(300) < p
        m = I.paired_difference(a, b, np.repeat(np.arange(60), 5), "d", seed=t)
        called += m["d/ci95_low"] > 0 or m["d/ci95_high"] < 0
    assert called / trials <= 0.09  # nominal 5%: 200 trials put the rate within about ±3 points of it


def test_accuracy_intervals_resample_the_images_the_questions_were_asked_about():
    """Ten questions per image, all right or all wrong together: resampled by image the interval is
    as wide as 20 independent draws give; resampled by question it would be √10× narrower."""
    correct = np.repeat([1, 0] * 10, 10)
    images = np.repeat(np.arange(20), 10)
    types = np.tile(["colour", "shape"], 100)
    by_image = I.accuracy_metrics(correct, types, "em", clusters=images)
    by_question = I.accuracy_metrics(correct, types, "em")
    width = lambda m, k: m[f"{k}/ci95_high"] - m[f"{k}/ci95_low"]
    assert width(by_image, "em") > 2.5 * width(by_question, "em")
    assert width(by_image, "em/colour") > 2.5 * width(by_question, "em/colour")
    assert by_image["em"] == by_question["em"] == 0.5
