"""04_evaluate's sections on hand-made predictions: the VQA table with its baselines, spoken VQA
beside the same questions typed, the printed intervals. (The whole notebook runs in
tests/series/test_notebooks.py.)"""
import datasets
import pandas as pd
import pytest

from mbmlab.analyses import evaluation
from mbmlab.data.tasks import Example


class FakeSplit:
    """What the sections read of a ``TestSplit``: its per-task frames and its training examples
    (no test examples generated: the spoken cascade has no transcripts to ask)."""

    def __init__(self, frames, train_examples, trained_voices=()):
        self.frames, self.train_examples, self.trained_voices = frames, train_examples, set(trained_voices)
        self.examples, self.predictions = [], []

    def frame(self, task):
        return self.frames[task].copy()

    def train_targets(self, task):
        return [e.target for e in self.train_examples if e.task == task]


def vqa_frame():
    # image a: 2 questions, both right; image b: 2 questions, one right ("Red." normalises to "red")
    return pd.DataFrame({"image_id": ["a", "a", "b", "b"], "source": ["easyvqa", "easyvqa", "scenes", "scenes"],
                         "question": ["colour?", "shape?", "colour?", "shape?"],
                         "question_type": ["colour", "shape", "colour", "shape"],
                         "answer": ["red", "circle", "red", "star"], "prediction": ["Red.", "circle", "red", "circle"]})


def train():
    # majority answer "red" (3 of 5); per type: colour → red, shape → circle (2 of 2)
    rows = [("colour", "red"), ("colour", "red"), ("colour", "red"), ("shape", "circle"), ("shape", "circle")]
    return [Example("vqa", 0, None, "q", answer, kind) for kind, answer in rows]


def test_vqa_section_scores_the_model_and_every_baseline_by_hand():
    split = FakeSplit({"vqa": vqa_frame()}, train())
    blind = ["red", "red", "red", "red"]  # right on the two colour questions
    qa, scores, metrics = evaluation.vqa_section(split, {"blind": blind})
    assert metrics["vqa/exact_match"] == pytest.approx(3 / 4)
    assert metrics["vqa/exact_match/shape"] == pytest.approx(1 / 2)
    assert metrics["baseline/majority/vqa/exact_match"] == pytest.approx(2 / 4)  # "red" everywhere
    assert metrics["baseline/majority_by_type/vqa/exact_match"] == pytest.approx(3 / 4)  # red, circle, red, circle
    assert metrics["baseline/blind/vqa/exact_match"] == pytest.approx(2 / 4)
    assert metrics["vqa/source/easyvqa/exact_match"] == 1.0 and metrics["vqa/source/scenes/exact_match"] == 0.5
    assert set(scores) == {"model", "majority ('red')", "majority per type", "blind"}
    assert list(qa["correct"]) == [1.0, 1.0, 1.0, 0.0] and "blind" not in qa  # the CSV keeps the model's columns
    low, high = metrics["vqa/exact_match/ci95_low"], metrics["vqa/exact_match/ci95_high"]
    assert low <= 0.75 <= high and evaluation.show_interval(metrics, "vqa/exact_match") == \
        f"0.7500 [{low:.4f}, {high:.4f}]"


def test_spoken_questions_are_compared_with_the_same_questions_typed():
    qa = vqa_frame()
    spoken = qa.iloc[[1, 3]].assign(prediction=["circle", "star"], voice="v1")  # both right by voice
    split = FakeSplit({"spoken_vqa": spoken}, [], trained_voices={"v1"})
    frame, metrics = evaluation.spoken_vqa_section(split, qa)
    assert metrics["spoken_vqa/exact_match"] == 1.0
    assert metrics["spoken_vqa/typed_exact_match"] == pytest.approx(1 / 2)  # typed: circle right, star wrong
    assert metrics["spoken_vqa/minus_typed/exact_match"] == pytest.approx(1 / 2)  # paired: (1 − 1 + 1 − 0) / 2
    assert evaluation.spoken_lines(metrics, 2)[-1].startswith("answered from the clip minus typed, the same questions: +50.0 points [")
    assert list(frame["correct"]) == [1.0, 1.0]
    assert "spoken_vqa/typed_exact_match" not in evaluation.spoken_vqa_section(split, None)[1]


def test_held_out_voices_are_scored_apart_from_the_trained_ones():
    asr = pd.DataFrame({"voice": ["v1", "v1", "new", "new"], "answer": ["a red circle"] * 4,
                        "prediction": ["a red circle", "a red square", "a blue square", "a red circle"]})
    metrics = evaluation.asr_section(FakeSplit({"asr": asr}, [], trained_voices={"v1", "v2"}))[1]
    assert metrics["asr/wer"] == pytest.approx(3 / 12)
    assert metrics["asr/wer/seen_voices"] == pytest.approx(1 / 6)  # one word wrong of six
    assert metrics["asr/wer/heldout_voices"] == pytest.approx(2 / 6)
    assert metrics["asr/clips/heldout_voices"] == 2.0
    assert metrics["asr/wer/heldout_voices/ci95_low"] <= 2 / 6 <= metrics["asr/wer/heldout_voices/ci95_high"]
    assert evaluation.voice_lines(metrics, "asr/wer")[1].startswith("heldout voices (2 clips): 0.3333 [")
    everyone = evaluation.asr_section(FakeSplit({"asr": asr}, [], trained_voices={"v1", "new"}))[1]
    assert "asr/wer/heldout_voices" not in everyone and evaluation.voice_lines(everyone, "asr/wer") == []
    spoken = vqa_frame().assign(voice=["v1", "v1", "new", "new"])
    _, scores = evaluation.spoken_vqa_section(FakeSplit({"spoken_vqa": spoken}, [], {"v1"}), None)
    assert scores["spoken_vqa/exact_match/seen_voices"] == 1.0
    assert scores["spoken_vqa/exact_match/heldout_voices"] == 0.5
    assert evaluation.voice_lines(scores, "spoken_vqa/exact_match")[0].startswith("seen voices: 1.0000 [")


def test_the_cascade_is_scored_apart_for_trained_and_held_out_voices(monkeypatch):
    """Four spoken questions (clips 0–3; clips 2 and 3 by a voice never trained on), each heard
    as the asr predictions say and asked typed: the fake answers "red" to anything heard as a
    colour question, "circle" otherwise."""
    import torch

    qa = vqa_frame().assign(correct=[1.0, 1.0, 1.0, 0.0])  # typed: b's shape wrong
    spoken = qa.drop(columns="correct").assign(voice=["v1", "v1", "new", "new"])
    asked = [Example("spoken_vqa", i // 2, c, "", a, t) for i, (c, a, t) in
             enumerate(zip(range(4), spoken["answer"], spoken["question_type"]))]
    heard = ["colour?", "shape?", "shape?", "shape?"]  # clip 2 misheard: a colour question heard as shape
    split = FakeSplit({"spoken_vqa": spoken}, [], trained_voices={"v1"})
    split.examples = asked + [Example("asr", None, c, "", "") for c in range(4)]
    split.predictions = ["red", "circle", "red", "star"] + heard
    split.model = split.processor = None
    split.pixels, split.name, split.batch_size, split.num_beams = {"test": torch.zeros(2, 1)}, "test", 8, 1
    split.limits = {"vqa": 4, "spoken_vqa": 4}
    monkeypatch.setattr(evaluation, "generate", lambda m, p, examples, pixels, **_:
                        ["red" if e.question == "colour?" else "circle" for e in examples])
    frame, metrics = evaluation.spoken_vqa_section(split, qa)
    assert list(frame["cascade_correct"]) == [1.0, 1.0, 0.0, 0.0]  # clip 2 misheard; clip 3's answer is star
    assert metrics["spoken_vqa/cascade/exact_match/seen_voices"] == 1.0
    assert metrics["spoken_vqa/cascade/exact_match/heldout_voices"] == 0.0
    assert metrics["spoken_vqa/cascade_minus_typed/exact_match/seen_voices"] == 0.0
    assert metrics["spoken_vqa/cascade_minus_typed/exact_match/heldout_voices"] == -0.5  # (0 − 1 + 0 − 0) / 2
    lines = evaluation.spoken_lines(metrics, 4)
    assert "  heldout voices: 0.0000 [0.0000, 0.0000]" in lines
    assert any(line.startswith("the cascade, held-out voices minus typed, the same questions: -50.0 points")
               for line in lines)


def test_fused_against_cnn_bow_is_a_paired_difference_resampling_images():
    split = FakeSplit({"vqa": vqa_frame()}, train())
    cnn_bow = ["red", "star", "red", "star"]  # right on a-colour, b-colour, b-shape; the model on a-colour, a-shape, b-colour
    qa, _, metrics = evaluation.vqa_section(split, {"cnn_bow": cnn_bow})
    assert list(qa["cnn_bow_correct"]) == [1.0, 0.0, 1.0, 1.0]
    assert metrics["vqa/minus_cnn_bow/exact_match"] == 0.0  # 3/4 − 3/4
    # per image: a +1 over 2 questions, b −1 over 2; a resample of images has difference in {−1/2, 0, +1/2}
    assert metrics["vqa/minus_cnn_bow/exact_match/ci95_low"] == -0.5
    assert metrics["vqa/minus_cnn_bow/exact_match/ci95_high"] == 0.5


def test_reference_finding_says_which_way_or_that_nothing_is_established():
    base = {"vqa/exact_match": 0.9, "baseline/cnn_bow/vqa/exact_match": 0.95}
    finding = lambda d, low, high: evaluation.reference_finding(base | {
        "vqa/minus_cnn_bow/exact_match": d, "vqa/minus_cnn_bow/exact_match/ci95_low": low,
        "vqa/minus_cnn_bow/exact_match/ci95_high": high})
    assert finding(-0.05, -0.08, -0.02).startswith("the fused model falls behind")
    assert "-5.0 points [-8.0, -2.0]" in finding(-0.05, -0.08, -0.02)
    assert finding(0.05, 0.02, 0.08).startswith("the fused model beats")
    assert finding(-0.01, -0.03, 0.01).startswith("no difference from the supervised reference is established")
    assert "add cnn_bow" in evaluation.reference_finding({})


def test_pocketsphinx_lines_name_both_rates_on_the_same_clips_or_nothing():
    assert evaluation.pocketsphinx_lines({}) == []
    metrics = {"baseline/pocketsphinx/asr/clips": 100.0}
    for name, value in (("baseline/pocketsphinx/asr/wer", 0.6), ("asr/on_pocketsphinx_clips/wer", 0.4)):
        metrics |= {name: value, f"{name}/ci95_low": value - 0.1, f"{name}/ci95_high": value + 0.1}
    assert evaluation.pocketsphinx_lines(metrics) == [
        "PocketSphinx (CMU's bundled English model) on 100 of them: WER 0.6000 [0.5000, 0.7000]; the fused model "
        "on the same clips 0.4000 [0.3000, 0.5000]"]


# ---------------------------------------------------------------- translation

CAPTIONS = ["a red circle", "a blue star", "a green triangle", "a teal rectangle", "a small yellow star left of a "
            "large brown circle"]
ZH = ["一个红色圆形", "一个蓝色星形", "一个绿色三角形", "一个青色长方形", "一个小的黄色星形在一个大的棕色圆形左边"]


class TranslateSplit(FakeSplit):
    """A test split of five images whose pixels carry their row + 1 (a blank image: 0); the
    model below translates the image it is given, so it shows which image each generation saw."""

    def __init__(self, speech=False):
        import torch

        rows = range(len(CAPTIONS))
        examples = [Example("translate", i, None, CAPTIONS[i], ZH[i], language="zh") for i in rows]
        frame = pd.DataFrame({"question": CAPTIONS, "answer": ZH, "prediction": ZH, "image_id": list("abcde"),
                              "question_type": "", "source": "scenes"})
        super().__init__({"translate": frame}, [])
        self.examples, self.predictions = examples, list(ZH)
        self.pixels, self.name = {"test": torch.arange(1, 6, dtype=torch.float32).view(5, 1, 1, 1)}, "test"
        self.model = self.processor = None
        self.batch_size, self.num_beams, self.limits, self.tasks = 8, 1, {"translate": 30}, ["translate"]


def fake_generate(model, processor, examples, pixel_values, **_):
    """Translates what the image shows; with a blank image, the source word for word where it can
    (a masked word stays unsaid)."""
    out = []
    for e in examples:
        shown = int(pixel_values[e.image].flatten()[0])
        out.append(ZH[shown - 1] if shown else "一个" + "".join(
            {"circle": "圆形", "star": "星形", "red": "红色", "blue": "蓝色"}.get(w, "") for w in e.question.split()))
    return out


def test_translation_is_scored_with_its_image_a_blank_one_and_another_images(monkeypatch):
    monkeypatch.setattr(evaluation, "generate", fake_generate)
    frame, metrics = evaluation.translate_section(TranslateSplit(), "colour", seed=3)
    assert metrics["translate/bleu"] == pytest.approx(100) and metrics["translate/chrf"] == pytest.approx(100)
    assert metrics["baseline/blank_image/translate/bleu"] < 100
    assert metrics["translate/minus_blank_image/bleu"] > 0
    # the incongruent decoding saw another image for every caption: this fake then says that image's caption
    swap = evaluation.incongruent_rows(5, 3)
    assert list(frame["incongruent_image"]) == [ZH[k] for k in swap]
    assert all(frame["incongruent_image"] != frame["reference"])
    # the probe: colours masked; only the image can say them
    assert list(frame["masked/image/match"]) == [True] * 5 and metrics["translate/probe/colour"] == 1.0
    assert metrics["translate/probe/colour/scenes"] == 1.0  # per source too
    assert metrics["baseline/blank_image/translate/probe/colour"] == 0.0  # "[mask]" says no colour
    assert metrics["baseline/incongruent_image/translate/probe/colour/follows"] == 1.0
    assert metrics["translate/probe/colour/minus_blank_image"] == 1.0
    lines = evaluation.translate_lines(metrics, 5, "colour")
    assert lines[1].startswith("  with the image: BLEU 100.0 [100.0, 100.0]")
    assert "with another test image, naming that image's colours: 100.0% [100.0, 100.0]" in lines[-1]


def test_incongruent_rows_never_keep_an_image_and_vary_with_the_seed():
    import numpy as np

    for n in (2, 3, 10, 101):
        rows = evaluation.incongruent_rows(n, seed=n)
        assert sorted(rows) == list(range(n)) and not (rows == np.arange(n)).any()
    assert list(evaluation.incongruent_rows(10, 0)) != list(evaluation.incongruent_rows(10, 1))
    with pytest.raises(ValueError, match="at least two"):
        evaluation.incongruent_rows(1)


def test_speech_translation_end_to_end_beside_the_cascade(monkeypatch):
    """Clip 0 heard right, clip 1 heard as nothing: the cascade translates what was heard, with a
    blank image, and says nothing for the clip it did not hear."""
    split = TranslateSplit()
    spoken = [Example("speech_translate", None, c, CAPTIONS[c], ZH[c], language="zh") for c in (0, 1)]
    heard = [Example("asr", None, c, "", CAPTIONS[c]) for c in (0, 1)]
    split.examples, split.predictions = spoken + heard, [ZH[0], ZH[0], "a red circle", ""]
    split.frames["speech_translate"] = pd.DataFrame({"question": CAPTIONS[:2], "answer": ZH[:2],
                                                     "prediction": [ZH[0], ZH[0]], "image_id": ["a", "b"]})
    seen = []
    monkeypatch.setattr(evaluation, "generate", lambda m, p, examples, pixels, **_: seen.append(pixels) or
                        fake_generate(m, p, examples, pixels))
    split.images = datasets.Dataset.from_dict({"image_id": ["e", "b", "a"]})  # the clips' images: rows 2 and 1
    frame, metrics = evaluation.speech_translate_section(split)
    assert list(frame["heard"]) == ["a red circle", ""] and list(frame["cascade"]) == ["一个红色圆形", ""]
    assert len(seen) == 2 and float(seen[0].abs().sum()) == 0.0  # first a blank image for the text translation
    # then with the image each caption describes: clip 0's is "a", row 2, whose pixels this fake translates
    assert list(frame["cascade_with_image"]) == [ZH[2], ""]
    assert metrics["speech_translate/bleu"] < 100 and "speech_translate/minus_cascade/bleu" in metrics
    assert "speech_translate/minus_cascade_with_image/bleu/ci95_low" in metrics
    lines = evaluation.speech_translate_lines(metrics, 2)
    assert lines[0].startswith("2 spoken test captions translated") and "caption's image" in lines[-1]
    split.images = datasets.Dataset.from_dict({"image_id": ["a"]})  # clip 1's image is not in the split
    frame, metrics = evaluation.speech_translate_section(split)
    assert "cascade_with_image" not in frame and "speech_translate/cascade_with_image/bleu" not in metrics


def test_one_test_image_has_no_incongruent_decoding(monkeypatch):
    monkeypatch.setattr(evaluation, "generate", fake_generate)
    split = TranslateSplit()
    split.examples, split.predictions = split.examples[:1], split.predictions[:1]
    split.frames["translate"] = split.frames["translate"].iloc[:1]
    split.pixels["test"] = split.pixels["test"][:1]
    frame, metrics = evaluation.translate_section(split, "colour")
    assert "baseline/incongruent_image/translate/bleu" not in metrics and "incongruent_image" not in frame
    assert metrics["translate/probe/colour"] == 1.0
    assert not any("another test image" in line for line in evaluation.translate_lines(metrics, 1, "colour"))


def test_questions_asked_in_chinese_are_paired_with_the_same_questions_in_english():
    """Each Chinese question meets its English original on the same image (the first of that
    image's questions that translates to it), so the paired gap compares like with like."""
    import datasets

    images = datasets.Dataset.from_dict({
        "image_id": ["a", "b"], "questions": [["colour?", "shape?", "which shape?"], ["colour?", "shape?"]],
        "translated_questions": [["颜色？", "形状？", "形状？"], ["颜色？", "形状？"]]})
    english = vqa_frame().assign(correct=[1.0, 0.0, 1.0, 1.0])  # a: colour right, shape wrong; b: both right
    asked = pd.DataFrame({"image_id": ["a", "a", "b", "b"], "question": ["颜色？", "形状？", "颜色？", "形状？"],
                          "question_type": ["colour", "shape", "colour", "shape"],
                          "answer": ["红色", "圆形", "红色", "星形"], "prediction": ["红色", "圆形", "蓝色", "星形"]})
    split = FakeSplit({"translated_vqa": asked}, [])
    split.images = images
    frame, metrics = evaluation.translated_vqa_section(split, english)
    assert list(frame["english"]) == ["colour?", "shape?", "colour?", "shape?"]
    assert list(frame["correct"]) == [1.0, 1.0, 0.0, 1.0] and list(frame["english_correct"]) == [1.0, 0.0, 1.0, 1.0]
    assert metrics["translated_vqa/exact_match"] == 0.75 and metrics["translated_vqa/exact_match/colour"] == 0.5
    assert metrics["translated_vqa/english_exact_match"] == 0.75
    assert metrics["translated_vqa/minus_english/exact_match"] == 0.0  # +1 on a's shape, −1 on b's colour
    lines = evaluation.translated_vqa_lines(metrics, 4, "zh")
    assert lines[0].startswith("4 test questions asked and answered in zh: exact match 75.0% [")
    assert lines[2].startswith("zh minus English, the same questions: +0.0 points [")
    assert lines[2].endswith("no difference established (the interval includes 0)")
    worse = metrics | {"translated_vqa/minus_english/exact_match/ci95_high": -0.01}
    assert evaluation.translated_vqa_lines(worse, 4, "zh")[2].endswith("worse in zh")
    alone, only = evaluation.translated_vqa_section(split, None)  # a run without English VQA: no pairing
    assert "english" not in alone and "translated_vqa/english_exact_match" not in only


def test_blind_finding_names_the_texts_answered_blind_and_says_so_when_there_are_none():
    """Through ``vqa_section``, which flags each question (``answered_blind``, the column
    ``vqa_predictions.csv`` keeps) once, and ``blind_finding``, which reads the flag. (Mutation:
    the flag set for every question → the shape text is named too, the share reads 100%.)"""
    rows = [("is there a circle?", "yes" if i < 6 else "no", "no", f"i{i}") for i in range(20)]
    rows += [("what shape is it?", "circle" if i % 2 else "square", "circle" if i % 2 else "square", f"i{i}")
             for i in range(20)]
    frame = pd.DataFrame(rows, columns=["question", "answer", "prediction", "image_id"]).assign(
        source="easyvqa", question_type="shape")  # a type train() has, for the majority-per-type row
    qa, _, metrics = evaluation.vqa_section(FakeSplit({"vqa": frame}, train()), {})
    assert qa["answered_blind"].tolist() == [True] * 20 + [False] * 20
    assert metrics["vqa/blind_questions/texts"] == 1 and metrics["vqa/blind_questions/share"] == 0.5
    said = evaluation.blind_finding(qa)
    assert said.startswith("answered blind: 1 question texts (20 questions, 50.0%)")
    assert "'is there a circle?' → always 'no' (70% right, 20 images)" in said and "what shape" not in said
    assert evaluation.blind_finding(qa[~qa["answered_blind"]]).startswith("no question text is answered blind")
