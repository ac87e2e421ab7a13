import pandas as pd
import pytest

from mbmlab.metrics import caption_scores, exact_match_by_type, majority_answer, majority_by_type, normalise_answer


def test_exact_match_by_type_hand_worked():
    frame = pd.DataFrame({
        "answer": ["blue", "no", "yes", "circle"],
        "question_type": ["colour", "yes/no", "yes/no", "shape"],
        "prediction": ["Blue.", "no", "no", "triangle"],
    })
    assert exact_match_by_type(frame) == {"exact_match": 0.5, "exact_match/colour": 1.0, "exact_match/shape": 0.0,
                                          "exact_match/yes/no": 0.5}


def test_normalise_answer():
    assert normalise_answer("  A  Blue, rectangle! ") == "a blue rectangle"


def test_majority_is_deterministic_on_ties():
    assert majority_answer(["no", "yes", "yes", "no", "red"]) == "no"
    frame = pd.DataFrame({"answer": ["yes", "yes", "no", "red"], "question_type": ["yes/no"] * 3 + ["colour"]})
    assert majority_by_type(frame) == {"yes/no": "yes", "colour": "red"}


def test_caption_scores_agree_with_pycocoevalcap():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    refs = {"1": ["a blue rectangle"], "2": ["a red circle"], "3": ["a green triangle"], "4": ["a gray circle"]}
    preds = {"1": "a blue rectangle", "2": "a red triangle", "3": "a green", "4": "a yellow circle"}
    ours = caption_scores(refs, preds)
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
    res = tok.tokenize({k: [{"caption": v}] for k, v in preds.items()})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    for n in range(4):
        assert abs(ours[f"BLEU-{n + 1}"] - bleu[n]) <= 1e-9
    assert abs(ours["CIDEr"] - cider) <= 1e-9


def test_one_meteor_process_serves_every_call_and_calls_do_not_affect_each_other():
    """METEOR (a JVM that loads paraphrase tables, ~9 s) starts once per process and is reused.
    Its score must be what a fresh pycocoevalcap Meteor gives, whatever was scored before."""
    from pycocoevalcap.meteor.meteor import Meteor

    from mbmlab.metrics import caption

    refs = {"1": ["a blue rectangle"], "2": ["a red circle"], "3": ["a green triangle"]}
    good = {"1": "a blue rectangle", "2": "a red circle", "3": "a green square"}
    bad = {"1": "a red square", "2": "two blue stars", "3": "nothing"}
    first = caption_scores(refs, good)["METEOR"]
    process = caption.meteor_scorer()
    assert caption_scores(refs, bad)["METEOR"] < first
    assert caption_scores(refs, good)["METEOR"] == first and caption.meteor_scorer() is process
    gts, res = caption.tokenize(refs, good)
    assert Meteor().compute_score(gts, res)[0] == pytest.approx(first, abs=1e-12)


def test_perfect_captions_score_bleu_one():
    refs = {str(i): [c] for i, c in enumerate(["a blue rectangle", "a red circle", "a green triangle"])}
    scores = caption_scores(refs, {k: v[0] for k, v in refs.items()})
    assert scores["BLEU-1"] == pytest.approx(1.0) and scores["BLEU-3"] == pytest.approx(1.0)


def test_caption_scores_refuse_mismatched_ids():
    with pytest.raises(ValueError, match="same ids"):
        caption_scores({"1": ["a"]}, {"2": "a"})


def test_caption_exact_match_hand_worked():
    from mbmlab.metrics import exact_match
    refs = {"1": ["a blue rectangle"], "2": ["a red circle"], "3": ["a green triangle"], "4": ["a gray circle"]}
    preds = {"1": "A blue rectangle.", "2": "a red triangle", "3": "a green", "4": "a gray circle"}
    assert exact_match(refs, preds) == 0.5


def test_caption_metrics_combine_exact_match_and_coco_scores():
    from mbmlab.metrics import caption_metrics
    refs = {"1": ["a blue rectangle"], "2": ["a red circle"]}
    preds = {"1": "a blue rectangle", "2": "a red triangle"}
    metrics = caption_metrics(refs, preds)
    assert metrics["exact_match"] == 0.5
    assert metrics["CIDEr"] == caption_scores(refs, preds)["CIDEr"]


def test_blind_questions_are_those_answered_alike_for_every_image_whose_answers_vary():
    """By hand: A is answered "no" for all 20 images though 6 hold the shape (blind, 70% right);
    B is answered right (not blind); C's answer never varies ("circle" is right everywhere: one
    answer is no sign of blindness); D is asked of 10 images only; E's truth is 95% "no", so one
    answer for all is within max_truth_share. Mutations: the truth-varies test dropped → C is
    listed; the images minimum dropped → D is listed; a prediction compared raw, not normalised →
    A ("No." once) drops out."""
    from mbmlab.metrics.vqa import blind_questions

    rows = []
    for i in range(20):
        rows.append(("is there a circle?", "yes" if i < 6 else "no", "No." if i == 0 else "no", f"a{i}"))
        rows.append(("is there a square?", "yes" if i < 6 else "no", "yes" if i < 6 else "no", f"a{i}"))
        rows.append(("what shape is it?", "circle", "circle", f"a{i}"))
        rows.append(("is there a star?", "yes" if i == 0 else "no", "no", f"a{i}"))
    for i in range(10):
        rows.append(("is there a line?", "yes" if i < 5 else "no", "no", f"d{i}"))
    frame = pd.DataFrame(rows, columns=["question", "answer", "prediction", "image_id"])
    found = blind_questions(frame)
    assert found.to_dict("records") == [{"question": "is there a circle?", "images": 20, "answered": "no",
                                         "exact_match": 0.7}]
    assert blind_questions(frame, min_images=10)["question"].tolist() == ["is there a line?", "is there a circle?"]
    assert blind_questions(frame, max_truth_share=1.0)["question"].tolist() == [
        "is there a circle?", "is there a star?", "what shape is it?"]  # every constant answer, right or not
