"""mbmlab.metrics.stats: hand-worked cases, then the two calibrations the statistics must pass on
simulated data — a gap test that does not call gaps that are not there, and a clustered interval
that covers the true mean."""
import math

import numpy as np
import pytest

from mbmlab.metrics import stats


def test_mean_interval_hand_worked_clusters():
    # two images, two questions each, every question of an image right or every one wrong: a
    # resample draws two images, so its mean is 0, 0.5 or 1 (chances 1/4, 1/2, 1/4)
    mean, low, high = stats.mean_interval([1, 1, 0, 0], clusters=["a", "a", "b", "b"])
    assert (mean, low, high) == (0.5, 0.0, 1.0)
    # unequal clusters count by their items: 3 of 4 answers right
    assert stats.mean_interval([1, 1, 1, 0], clusters=[7, 7, 7, 9])[0] == 0.75
    with pytest.raises(ValueError, match="cluster labels"):
        stats.mean_interval([1, 0], clusters=[1])


def test_group_gap_hand_worked_and_as_wer_counts():
    # WER-style: group a has 2 edits over 4 words, group b 2 over 4: no gap at all
    result = stats.group_gap_test([1, 1, 0, 2], ["a", "a", "b", "b"], denominators=[2, 2, 2, 2])
    assert result["gap"] == 0.0 and result["p_value"] == 1.0 and not result["established"]
    # a perfect split of 20 right against 20 wrong: gap 1, no shuffle reaches it
    result = stats.group_gap_test([1] * 20 + [0] * 20, ["x"] * 20 + ["y"] * 20)
    assert result["gap"] == 1.0 and result["p_value"] == pytest.approx(1 / 1001) and result["established"]
    with pytest.raises(ValueError, match="two groups"):
        stats.group_gap_test([1, 0], ["x", "x"])


def test_no_gap_is_rarely_called_established_though_its_interval_never_holds_zero():
    """200 seeded trials of 4 groups × 50 items, every group 50% right: the permutation test may
    call a gap in about 5% of them (≤ 10% allowed); the bootstrap interval of max − min sits above
    0 in nearly all (which is why it is not the test)."""
    called = interval_above_zero = 0
    for trial in range(200):
        rng = np.random.default_rng(trial)
        values = rng.integers(0, 2, 200)
        result = stats.group_gap_test(values, np.repeat(list("abcd"), 50), seed=trial, n_resamples=500)
        called += result["established"]
        interval_above_zero += result["ci95_low"] > 0
    assert called <= 20, called
    assert interval_above_zero >= 180, interval_above_zero


def test_a_real_gap_is_found():
    found = 0
    for trial in range(50):
        rng = np.random.default_rng(1000 + trial)
        values = np.concatenate([rng.random(50) < 0.3, rng.random(50) < 0.7])
        found += stats.group_gap_test(values, ["low"] * 50 + ["high"] * 50, seed=trial, n_resamples=500)["established"]
    assert found >= 45, found


def test_cluster_bootstrap_covers_the_true_mean_and_the_item_bootstrap_does_not():
    """300 trials of 30 clusters × 10 items with intraclass correlation 0.5 (cluster effect and
    item noise of variance 0.5 each; true mean 0): resampling clusters covers 0 in ≥ 88% of trials;
    resampling items treats 300 correlated values as independent and covers visibly less
    (theory: the design effect 1 + 9·0.5 = 5.5 shrinks the interval √5.5 ≈ 2.3×: about 60%)."""
    clustered = itemwise = 0
    labels = np.repeat(np.arange(30), 10)
    for trial in range(300):
        rng = np.random.default_rng(trial)
        values = np.repeat(rng.normal(0, np.sqrt(0.5), 30), 10) + rng.normal(0, np.sqrt(0.5), 300)
        _, low, high = stats.mean_interval(values, clusters=labels, seed=trial, n_resamples=500)
        clustered += low <= 0 <= high
        _, low, high = stats.mean_interval(values, seed=trial, n_resamples=500)
        itemwise += low <= 0 <= high
    assert clustered >= 0.88 * 300, clustered
    assert itemwise <= 0.75 * 300, itemwise


def test_holm_hand_worked():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → carried max 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]).tolist() == [1.0, 1.0]  # 0.5·2 capped at 1, carried to 0.9·1


def test_seed_difference_hand_worked():
    # paired seeds: differences 0.10, 0.10, 0.06 → mean 0.08667, sd 0.02309, se 0.01333;
    # t(2, 0.975) = 4.3027 → ± 0.05737
    result = stats.seed_difference([0.90, 0.92, 0.91], [0.80, 0.82, 0.85])
    assert result["difference"] == pytest.approx(0.086667, abs=1e-6)
    assert (result["ci95_low"], result["ci95_high"]) == pytest.approx((0.02930, 0.14404), abs=1e-4)
    with pytest.raises(ValueError, match="two seeds"):
        stats.seed_difference([0.9], [0.8])
    # other seeds in each arm: Welch's t on the same values — means 0.91 and 0.82333, variances
    # 0.0001 and 0.000633, se 0.015635, Welch–Satterthwaite df = 2.69 (not the paired ± 0.05737)
    welch = stats.seed_difference([0.90, 0.92, 0.91], [0.80, 0.82, 0.85], paired=False)
    assert welch["difference"] == pytest.approx(0.086667, abs=1e-6)
    half = (welch["ci95_high"] - welch["ci95_low"]) / 2
    from scipy import stats as st
    df = (0.0001 / 3 + 0.00063333 / 3) ** 2 / ((0.0001 / 3) ** 2 / 2 + (0.00063333 / 3) ** 2 / 2)
    assert half == pytest.approx(st.t.ppf(0.975, df) * 0.015635, rel=1e-3) and abs(half - 0.05737) > 1e-3
    constant = stats.seed_difference([2.0, 2.0], [2.0, 2.0, 2.0], paired=False)
    assert constant["p_value"] == 1.0 and constant["ci95_low"] == constant["ci95_high"] == 0.0
    with pytest.raises(ValueError, match="as many values"):
        stats.seed_difference([0.9, 0.8], [0.8, 0.7, 0.6], paired=True)


def test_paired_test_hand_worked_and_calibrated():
    # two images: the first's two questions right by A only, the second's the same for both;
    # with two clusters no sign flip can look smaller than what was seen: p = 1
    result = stats.paired_test([1, 1, 1, 0], [0, 0, 1, 0], clusters=[1, 1, 2, 2])
    assert result["difference"] == 0.5 and result["p_value"] == 1.0
    # WER form: A makes 1 edit and B 3 over 10 words in each of 2 clips: -0.2
    assert stats.paired_test([1, 1], [3, 3], denominators=[10, 10])["difference"] == pytest.approx(-0.2)
    # null: two models, each 70% right on their own, on 40 images × 5 questions
    called = 0
    images = np.repeat(np.arange(40), 5)
    for trial in range(200):
        rng = np.random.default_rng(trial)
        ease = np.repeat(rng.random(40), 5)  # the image's difficulty, shared by both models
        a, b = rng.random(200) < ease, rng.random(200) < ease
        called += stats.paired_test(a, b, clusters=images, seed=trial, n_resamples=500)["p_value"] < 0.05
    assert called <= 20, called
    rng = np.random.default_rng(5)
    a, b = rng.random(200) < 0.9, rng.random(200) < 0.6
    assert stats.paired_test(a, b, clusters=images)["p_value"] < 0.01


def test_seed_mean_interval_by_hand():
    """1, 2, 3: mean 2, s = 1, t(0.975, 2) = 4.3027, half-width 4.3027 / √3 = 2.4841. One seed: no
    interval. Mutation: the population std (ddof 0) gives half-width 2.028 and fails."""
    from mbmlab.metrics.stats import seed_mean_interval

    mean, low, high = seed_mean_interval([1.0, 2.0, 3.0])
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - 2.4841, 2.0 + 2.4841), abs=1e-4)
    one = seed_mean_interval([0.7])
    assert one[0] == 0.7 and math.isnan(one[1]) and math.isnan(one[2])


def test_seed_comparisons_on_null_data_call_a_difference_about_one_time_in_twenty():
    """Two arms trained alike (each seed's score drawn from one distribution, a seed's shared part
    — its data order — common to both arms when paired): the paired t (3 seeds) and Welch's t
    (3 vs 4 seeds) call p < 0.05 in about 5% of 2,000 studies, and Holm over a family of 10 such
    comparisons calls any at all in at most about 5% of 400 studies. Mutations, each fails: a z
    quantile for the interval (1.96 instead of t(2) = 4.30: ~19% called); Holm without its
    multiplier (each p against 0.05 alone: ~40% of families call one)."""
    rng = np.random.default_rng(0)
    paired_calls = welch_calls = covered = 0
    for _ in range(2000):
        shared = rng.normal(0.9, 0.02, 3)  # each seed's own luck, shared by both arms
        a, b = shared + rng.normal(0, 0.01, 3), shared + rng.normal(0, 0.01, 3)
        result = stats.seed_difference(a, b)
        paired_calls += result["p_value"] < 0.05
        covered += result["ci95_low"] <= 0 <= result["ci95_high"]
        welch_calls += stats.seed_difference(rng.normal(0.9, 0.02, 3), rng.normal(0.9, 0.02, 4))["p_value"] < 0.05
    assert 60 <= paired_calls <= 140 and covered == 2000 - paired_calls, paired_calls  # 5% of 2,000 = 100
    assert welch_calls <= 140, welch_calls  # Welch's t is slightly conservative at these sizes
    families = 0
    for _ in range(400):
        p = [stats.seed_difference(rng.normal(0.9, 0.02, 3), rng.normal(0.9, 0.02, 3))["p_value"] for _ in range(10)]
        families += bool((stats.holm(p) < 0.05).any())
    assert families <= 32, families  # at most 5% of 400 = 20, with room for chance
