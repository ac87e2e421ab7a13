"""The bias study's pieces on hand-made inputs; the whole notebook runs on the tiny series in
test_notebooks.py."""
import pandas as pd
import pytest

from mbmlab.analyses import bias_study


def test_balancing_repeats_evens_the_colours_of_a_biased_shape():
    # circles: red on 6 images, blue on 2, green on 3 → copies 1, round(6/2) = 3, round(6/3) = 2;
    # the triangle image is not of a biased shape → 1
    objects = pd.DataFrame({"image_id": [f"r{i}" for i in range(6)] + ["b0", "b1", "g0", "g1", "g2", "t0"],
                            "shape": ["circle"] * 11 + ["triangle"],
                            "colour": ["red"] * 6 + ["blue"] * 2 + ["green"] * 3 + ["red"]})
    ids = list(objects["image_id"])
    repeats = dict(zip(ids, bias_study.balancing_repeats(objects, ids, {"circle": "red"})))
    assert repeats == {**{f"r{i}": 1 for i in range(6)}, "b0": 3, "b1": 3, "g0": 2, "g1": 2, "g2": 2, "t0": 1}
    # seen after repeating: red 6, blue 6, green 6
    seen = objects[objects["shape"] == "circle"].assign(n=lambda f: f["image_id"].map(repeats)).groupby("colour")["n"].sum()
    assert seen.to_dict() == {"blue": 6, "green": 6, "red": 6}


class FakeUnits:
    lengths = [16, 32, 16]
    rows = [["a", "b"], ["c"], ["d", "e", "f"]]

    def __getitem__(self, i):
        return i


def test_oversampled_repeats_units_and_keeps_their_lengths():
    data = bias_study.Oversampled(FakeUnits(), [1, 3, 0])
    assert len(data) == 4 and [data[i] for i in range(4)] == [0, 1, 1, 1]
    assert data.lengths == [16, 32, 32, 32] and data.n_examples == 2 + 3


def row(strength, mitigation, dba, low, high, accuracy, follows=0.9):
    return {"strength": strength, "mitigation": mitigation, "vqa/exact_match": accuracy,
            "bias/directional_amplification/A->T": dba, "bias/directional_amplification/A->T/ci95_low": low,
            "bias/directional_amplification/A->T/ci95_high": high, "counterfactual/colour/follows_image": follows}


def test_findings_say_established_only_from_the_paired_differences():
    strong = row(0.9, "none", 0.20, 0.15, 0.25, 0.90, 0.6) | {
        "bias/directional_amplification/A->T/minus_weakest": 0.19,
        "bias/directional_amplification/A->T/minus_weakest/ci95_low": 0.12,
        "bias/directional_amplification/A->T/minus_weakest/ci95_high": 0.26}
    mitigated = row(0.9, "oversample", 0.05, 0.02, 0.08, 0.88) | {
        "bias/directional_amplification/A->T/minus_unmitigated": -0.15,
        "bias/directional_amplification/A->T/minus_unmitigated/ci95_low": -0.2,
        "bias/directional_amplification/A->T/minus_unmitigated/ci95_high": -0.1,
        "vqa/exact_match/minus_unmitigated": -0.02, "vqa/exact_match/minus_unmitigated/ci95_low": -0.05,
        "vqa/exact_match/minus_unmitigated/ci95_high": 0.01}
    table = pd.DataFrame([row(0.5, "none", 0.01, -0.01, 0.03, 0.95), strong, mitigated])
    lines = bias_study.findings(table)
    assert lines[0].startswith("Directional amplification shape → colour rises")
    assert "paired difference +0.190 [+0.120, +0.260] on the same test images: established" in lines[0]
    assert "90% at 0.50, 60% at 0.90" in lines[1]
    assert "+0.200 → +0.050" in lines[2] and "a cost of 2.00 points" in lines[2]
    assert "paired amplification difference -0.150 [-0.200, -0.100]: established" in lines[2]
    assert "paired exact match difference -0.020 [-0.050, +0.010]: not established" in lines[2]
    # without the paired columns (one arm, or an older table) nothing is established
    flat = pd.DataFrame([row(0.5, "none", 0.02, -0.01, 0.05, 0.95), row(0.9, "none", 0.01, -0.02, 0.04, 0.95)])
    assert "does not rise steadily" in bias_study.findings(flat)[0] and "not established" in bias_study.findings(flat)[0]


def test_paired_columns_on_the_same_questions():
    """Two trained models asked the same colour questions about 40 one-object test images (20
    circles, 20 squares): the weak one answers what it sees, the strong one says red for every
    circle (the prior its training set holds).
    The strong − weak amplification is positive and established; the mitigated model is the weak
    one again, so its exact match gain over the strong is established too."""
    colours = ["red", "blue", "green", "yellow"] * 10
    shapes = ["circle"] * 20 + ["square"] * 20
    qa = pd.DataFrame({"question": [f"what color is the {s}?" for s in shapes], "answer": colours,
                       "question_type": "colour", "image_id": [f"img{i}" for i in range(40)],
                       "shape": shapes, "colour": colours, "prediction": colours})
    test = pd.DataFrame({"image_id": qa["image_id"], "shape": shapes, "colour": colours})
    train_weak = pd.DataFrame({"shape": ["circle"] * 4 + ["square"] * 4, "colour": ["red", "blue", "green", "yellow"] * 2})
    # the strong training set: circles mostly red, squares never
    train_strong = pd.DataFrame({"shape": ["circle"] * 6 + ["square"] * 3,
                                 "colour": ["red"] * 4 + ["blue", "green"] + ["blue", "green", "yellow"]})
    says_red = qa["prediction"].where(qa["shape"] == "square", "red")  # the prior, for every circle
    arms = {(0.5, "none"): (train_weak, qa, test), (0.9, "none"): (train_strong, qa.assign(prediction=says_red), test),
            (0.9, "oversample"): (train_strong, qa, test)}
    columns = bias_study.paired_columns(arms)
    gap = columns[(0.9, "none")]
    assert gap["bias/directional_amplification/A->T/minus_weakest"] > 0
    assert gap["bias/directional_amplification/A->T/minus_weakest/ci95_low"] > 0
    mitigation = columns[(0.9, "oversample")]
    assert mitigation["vqa/exact_match/minus_unmitigated"] == pytest.approx(15 / 40)  # 15 circles were wrong
    assert mitigation["vqa/exact_match/minus_unmitigated/ci95_low"] > 0
    assert mitigation["bias/directional_amplification/A->T/minus_unmitigated"] < 0


def test_unknown_mitigation_is_refused():
    with pytest.raises(ValueError, match="oversample"):
        bias_study.train_at(".", {}, None, 0.5, "reweigh", ".")


def test_realised_prior_share_hand_worked():
    # circles: red, red, blue → 2/3 red; triangles: blue → 1/1 blue; the star is not biased
    objects = pd.DataFrame({"shape": ["circle", "circle", "circle", "triangle", "star"],
                            "colour": ["red", "red", "blue", "blue", "red"]})
    assert bias_study.realised_prior_share(objects, {"circle": "red", "triangle": "blue"}) == pytest.approx(3 / 4)


def test_fairness_table_and_finding_from_the_study_columns():
    base = row(0.9, "none", 0.2, 0.15, 0.25, 0.9)
    speech = {"asr/wer": 0.3, "fairness/asr/voice/difference": 0.12, "fairness/asr/voice/difference/ci95_low": 0.05,
              "fairness/asr/voice/difference/ci95_high": 0.2, "fairness/asr/voice/ratio": 0.6,
              "fairness/asr/voice/difference/p_value": 0.001, "fairness/asr/voice/difference/established": 1.0,
              "fairness/spoken_vqa/voice/difference/p_value": 0.2, "fairness/spoken_vqa/voice/difference/established": 0.0,
              "fairness/asr/gender/difference": 0.01, "fairness/asr/gender/difference/ci95_low": -0.02,
              "fairness/asr/gender/difference/ci95_high": 0.04, "fairness/asr/gender/ratio": 0.97,
              "spoken_vqa/exact_match": 0.8, "fairness/spoken_vqa/voice/difference": 0.04,
              "fairness/spoken_vqa/voice/difference/ci95_low": -0.01, "fairness/spoken_vqa/voice/difference/ci95_high": 0.1,
              "fairness/spoken_vqa/voice/ratio": 0.95}
    table = pd.DataFrame([row(0.5, "none", 0.01, -0.01, 0.03, 0.95), base | speech])
    fair = bias_study.fairness_table(table)
    assert list(zip(fair["task"], fair["group"])) == [("asr", "voice"), ("asr", "gender"), ("spoken_vqa", "voice")]
    assert fair["overall"].tolist() == [0.3, 0.3, 0.8] and fair["ratio"].tolist() == [0.6, 0.97, 0.95]
    lines = bias_study.findings(table)
    asr = next(line for line in lines if line.startswith("Speech") and "asr" in line)
    assert "differs most by voice" in asr and "0.120 [0.050, 0.200]" in asr and "not established" not in asr
    spoken = next(line for line in lines if "spoken_vqa" in line)
    assert "not established" in spoken
    assert bias_study.fairness_table(pd.DataFrame([row(0.5, "none", 0, 0, 0, 1)])).empty
