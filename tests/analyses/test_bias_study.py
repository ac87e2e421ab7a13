"""The bias study's pieces on hand-made inputs; the whole notebook runs on a tiny run in
tests/series/test_series_upstream.py."""
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


def seeded(per_seed: dict) -> pd.DataFrame:
    """A study table of three seeds per arm: {(strength, mitigation): ([A→T per seed], [exact match per seed])}."""
    return pd.DataFrame([row(s, m, dba, dba - 0.01, dba + 0.01, acc) | {"seed": k}
                         for (s, m), (dbas, accs) in per_seed.items() for k, (dba, acc) in enumerate(zip(dbas, accs))])


def test_findings_over_seeds_come_from_paired_t_intervals_with_holm():
    """Hand-worked: the strongest − weakest amplification per seed is 0.10, 0.12, 0.08 → mean 0.10,
    paired t over 3 seeds established; the mitigation lowers amplification by 0.10 ± 0.01 in every
    seed (established) and changes exact match by +0.01, −0.01, +0.00 (not established)."""
    from scipy import stats

    table = seeded({(0.5, "none"): ([0.10, 0.11, 0.12], [0.80, 0.81, 0.79]),
                    (0.9, "none"): ([0.20, 0.23, 0.20], [0.80, 0.80, 0.80]),
                    (0.9, "oversample"): ([0.10, 0.12, 0.11], [0.81, 0.79, 0.80])})
    tests = bias_study.seed_tests(table)
    assert list(tests["comparison"]) == ["amplification: strongest − weakest", "amplification: oversample − none",
                                         "exact match: oversample − none"]
    trend = tests.iloc[0]
    assert trend["difference"] == pytest.approx(0.10) and trend["seeds"] == 3
    expected = stats.ttest_rel([0.20, 0.23, 0.20], [0.10, 0.11, 0.12])
    assert trend["p_value"] == pytest.approx(expected.pvalue)
    assert list(tests["established"]) == [True, True, False]
    lines = bias_study.findings(table)
    assert "rises" in lines[0] and "(means over 3 seeds)" in lines[0] and "+0.100 [" in lines[0] and "]: established" in lines[0]
    mitigation = lines[-1]
    assert "amplification difference over 3 seeds" in mitigation and "exact match difference over 3 seeds" in mitigation
    assert mitigation.endswith("not established.")
    # the test-resampling columns of one training are not what decides once there are seeds
    assert "on the same test images" not in " ".join(lines)


def test_a_seed_difference_that_holm_does_not_hold_is_not_established():
    """Per-seed differences 1.00, 1.35, 0.65 (×0.1): paired t p ≈ 0.039 alone, but with the two
    mitigation comparisons (p = 1) Holm multiplies the smallest by 3 → 0.115: not established.
    Mutation: p_holm = p_value (no correction) makes this test fail."""
    table = seeded({(0.5, "none"): ([0.0, 0.0, 0.0], [0.8, 0.7, 0.9]),
                    (0.9, "none"): ([0.100, 0.135, 0.065], [0.8, 0.7, 0.9]),
                    (0.9, "oversample"): ([0.100, 0.135, 0.065], [0.8, 0.7, 0.9])})
    tests = bias_study.seed_tests(table)
    assert tests.iloc[0]["p_value"] < 0.05
    assert tests.iloc[0]["p_holm"] == pytest.approx(min(1.0, 3 * tests.iloc[0]["p_value"]))
    assert not tests["established"].any()
    assert "not established" in bias_study.findings(table)[0]


def test_summarise_and_arm_table_show_seed_and_test_intervals():
    table = seeded({(0.5, "none"): ([0.10, 0.12, 0.14], [0.80, 0.82, 0.84])})
    means = bias_study.summarise(table)
    assert means["seeds"].tolist() == [3]
    # mean 0.12, sd 0.02, t(0.975, 2) = 4.303 → half-width 0.02 / √3 · 4.303 = 0.0497
    assert means["bias/directional_amplification/A->T"].iloc[0] == pytest.approx(0.12)
    assert means["bias/directional_amplification/A->T/seed_ci95_low"].iloc[0] == pytest.approx(0.12 - 0.04969, abs=1e-4)
    cell = bias_study.arm_table(table)["bias/directional_amplification/A->T"].iloc[0]
    assert cell == "0.1200 [0.0703, 0.1697] (test 0.1100–0.1300)"
    # one seed: no seed interval, the study_metrics keys stay one per arm and metric
    single = bias_study.summarise(table[table["seed"] == 0])
    assert "bias/directional_amplification/A->T/seed_ci95_low" not in single
    assert bias_study.study_metrics(table)["bias_study/none/0.50/vqa/exact_match"] == pytest.approx(0.82)
    assert bias_study.seed_tests(table[table["seed"] == 0]).empty


def test_stage0_reads_the_oversampled_rows_as_often_as_their_image_is_repeated():
    from mbmlab.data.tasks import Example

    rows = [Example("vqa", 0, None, "q", "a"), Example("vqa", 1, None, "q", "b"), Example("vqa", 1, None, "r", "c"),
            Example("asr", None, 0, "", "d")]
    again = bias_study.repeated_rows(rows, [1, 3])
    assert [e.target for e in again] == ["a", "b", "b", "b", "c", "c", "c", "d"]
