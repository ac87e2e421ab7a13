"""Bootstrap intervals against the normal approximation and hand-worked edge cases."""
import math

import numpy as np
import pytest

from mbmlab.metrics import bootstrap as B
from mbmlab.metrics.stats import mean_interval


def test_accuracy_interval_matches_the_normal_approximation():
    # 2,000 questions, 1,700 right: p = 0.85, standard error sqrt(p(1-p)/n) = 0.00798, so the
    # 95% interval is about 0.85 ± 1.96 · 0.00798 = [0.8344, 0.8656]
    scores = np.r_[np.ones(1700), np.zeros(300)]
    _, low, high = mean_interval(scores, n_resamples=4000)
    se = math.sqrt(0.85 * 0.15 / 2000)
    assert low == pytest.approx(0.85 - 1.96 * se, abs=0.002) and high == pytest.approx(0.85 + 1.96 * se, abs=0.002)


def test_edge_cases_and_determinism():
    assert mean_interval([1, 1, 1]) == (1.0, 1.0, 1.0)  # every resample of all-right answers is all right
    assert mean_interval([0, 1] * 50, seed=3) == mean_interval([0, 1] * 50, seed=3)
    # a ratio of sums, not a mean of ratios: items (1 edit / 1 word) and (0 / 9) give 0.1, not 0.5
    low, high = B.ratio_interval([1, 0] * 100, [1, 9] * 100)
    assert low < 0.1 < high and high < 0.2
    with pytest.raises(ValueError, match="non-empty"):
        mean_interval([])
    assert B.with_interval("vqa/accuracy", 0.9, (0.8, 0.95)) == {
        "vqa/accuracy": 0.9, "vqa/accuracy/ci95_low": 0.8, "vqa/accuracy/ci95_high": 0.95}
