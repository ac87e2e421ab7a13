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


def test_findings_say_whether_amplification_rises_and_what_the_mitigation_cost():
    table = pd.DataFrame([row(0.5, "none", 0.01, -0.01, 0.03, 0.95), row(0.9, "none", 0.20, 0.15, 0.25, 0.90, 0.6),
                          row(0.9, "oversample", 0.05, 0.02, 0.08, 0.88)])
    lines = bias_study.findings(table)
    assert lines[0].startswith("Directional amplification shape → colour rises") and "do not overlap" in lines[0]
    assert "90% at 0.50, 60% at 0.90" in lines[1]
    assert "+0.200 → +0.050" in lines[2] and "a cost of 2.00 points" in lines[2]
    flat = pd.DataFrame([row(0.5, "none", 0.02, -0.01, 0.05, 0.95), row(0.9, "none", 0.01, -0.02, 0.04, 0.95)])
    assert "does not rise steadily" in bias_study.findings(flat)[0] and "intervals overlap" in bias_study.findings(flat)[0]


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
