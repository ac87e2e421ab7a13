"""The scaling fit on hand-made points: a known power law is recovered, points off the compute
frontier are left out with their reason, too few points are refused."""
import json

import numpy as np
import pytest

import helpers
from mbmlab.lab import scaling
from mbmlab.training import trainer
from mbmlab.models import text


def test_fit_recovers_a_known_power_law():
    compute = np.geomspace(1e9, 1e13, 8)
    loss = 20.0 * compute ** -0.15 + 1.2  # L(C) = a·C^(−b) + c with a = 20, b = 0.15, c = 1.2
    law = scaling.fit_power_law(compute, loss)
    assert law.b == pytest.approx(0.15, abs=1e-4) and law.c == pytest.approx(1.2, abs=1e-3)
    assert law.a == pytest.approx(20.0, rel=1e-2) and law.r2 > 0.999999 and law.left_out == {}
    assert not law.c_on_bound


def test_noisy_law_has_intervals_that_hold_the_truth_and_a_flat_c_is_flagged():
    rng = np.random.default_rng(0)
    compute = np.geomspace(1e9, 1e13, 12)
    loss = np.minimum.accumulate(20.0 * compute ** -0.15 + 1.2 + rng.normal(0, 0.01, 12))  # on the frontier
    law = scaling.fit_power_law(compute, loss)
    low, high = law.intervals["b"]
    assert low < 0.15 < high and law.resamples > 150 and "95% [" in law.describe()
    # no irreducible loss at all: c = 0 is on its lower bound, and the fit says so
    pure = scaling.fit_power_law(compute, 20.0 * compute ** -0.15)
    assert pure.c_on_bound and "not determined" in pure.describe()


def test_points_off_the_frontier_are_left_out_hand_worked():
    # by compute: 1 → 3.0 (kept), 2 → 3.5 (worse than 3.0 at less compute: left out), 4 → 2.5,
    # 8 → 2.2, 16 → 2.6 (left out), 32 → 2.0
    compute = [1, 2, 4, 8, 16, 32]
    loss = [3.0, 3.5, 2.5, 2.2, 2.6, 2.0]
    assert scaling.frontier(compute, loss) == [0, 2, 3, 5]
    law = scaling.fit_power_law(compute, loss)
    assert law.used == [0, 2, 3, 5] and set(law.left_out) == {1, 4}
    assert "frontier" in law.left_out[1]
    with pytest.raises(ValueError, match="3 or more"):
        scaling.fit_power_law([1, 2, 4], [3.0, 3.5, 2.0])


def test_lm_compute_is_six_n_plus_head_d_hand_worked(tokenizer):
    lm = text.new_language_model(tokenizer, 32, 1, 2, 0)
    lines = trainer.TextLines(["a red circle", "what shape"], tokenizer)
    tokens = sum(len(ids) for ids in lines.ids)
    # one GPT-2 block of width 32: ln_1 and ln_2 (2·2·32), attention c_attn 32×96 + 96, c_proj
    # 32×32 + 32, MLP c_fc 32×128 + 128, c_proj 128×32 + 32; the final ln_f 2·32
    n = 2 * 2 * 32 + (32 * 96 + 96) + (32 * 32 + 32) + (32 * 128 + 128) + (128 * 32 + 32) + 2 * 32
    out = trainer.lm_compute(lm, lines, epochs=2.0)
    assert out["lm/non_embedding_parameters"] == n
    head = 32 * len(tokenizer)  # the tied output head: width × vocabulary multiply-adds per token
    assert out["lm/head_parameters"] == head
    assert out["lm/train_tokens"] == 2 * tokens and out["lm/train_flops"] == 6 * (n + head) * 2 * tokens


def test_points_from_run_folders(tmp_path):
    for i, (dim, flops, ppl) in enumerate([(32, 1e10, 20.0), (64, 4e10, 12.0), (128, 1.6e11, 9.0)]):
        helpers.fake_run(tmp_path / f"r{i}", {"lm/train_flops": flops, "lm/perplexity": ppl,
                                              "lm/non_embedding_parameters": 1.0, "lm/train_tokens": 2.0},
                         {"lm_dim": dim, "lm_layers": 2, "max_train_images": 500})
    table, law = scaling.fit_and_write(tmp_path, sorted(tmp_path.glob("r*")))
    assert table["loss"].round(6).tolist() == [round(float(np.log(v)), 6) for v in (20.0, 12.0, 9.0)]
    saved = json.loads((tmp_path / "scaling.json").read_text())
    assert saved["b"] == pytest.approx(law.b) and (tmp_path / "scaling.png").stat().st_size > 10_000
