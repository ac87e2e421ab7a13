"""mbmlab.metrics.stats: hand-worked cases, then the two calibrations the statistics must pass on
simulated data — a gap test that does not call gaps that are not there, and a clustered interval
that covers the true mean."""
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
