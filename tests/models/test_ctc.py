"""CTC targets, loss and decoding on hand-worked cases; SpecAugment's masks."""
import math

import pytest
import torch

from mbmlab.models import ctc
from mbmlab.training import ctc as ctc_training


def log_probs(rows):
    """(1, T, C) log-probabilities from per-frame probability rows."""
    return torch.tensor([rows], dtype=torch.float64).log()


def test_ctc_loss_sums_every_path_that_collapses_to_the_transcript():
    # vocabulary: blank, 'a'. Two frames, transcript "a": the paths a a, a -, - a all collapse to "a".
    p = [[0.3, 0.7], [0.6, 0.4]]  # frame t: [p(blank), p(a)]
    by_hand = p[0][1] * p[1][1] + p[0][1] * p[1][0] + p[0][0] * p[1][1]  # 0.28 + 0.42 + 0.12 = 0.82
    loss = ctc.ctc_loss(log_probs(p), torch.tensor([2]), torch.tensor([1]), torch.tensor([1]))
    # "mean" reduction divides by the transcript's length (1 here)
    assert loss.item() == pytest.approx(-math.log(by_hand), rel=1e-6)


def test_ctc_loss_needs_a_blank_between_repeated_characters():
    # transcript "aa" in three frames: only a - a (a a a and a a - collapse to one "a")
    p = [[0.1, 0.9], [0.5, 0.5], [0.2, 0.8]]
    by_hand = 0.9 * 0.5 * 0.8
    loss = ctc.ctc_loss(log_probs(p), torch.tensor([3]), torch.tensor([1, 1]), torch.tensor([2]))
    assert loss.item() == pytest.approx(-math.log(by_hand) / 2, rel=1e-6)


def test_ctc_loss_ignores_frames_past_the_clip():
    p = [[0.3, 0.7], [0.6, 0.4], [0.99, 0.01]]  # the third frame is padding
    short = ctc.ctc_loss(log_probs(p[:2]), torch.tensor([2]), torch.tensor([1]), torch.tensor([1]))
    padded = ctc.ctc_loss(log_probs(p), torch.tensor([2]), torch.tensor([1]), torch.tensor([1]))
    assert padded.item() == pytest.approx(short.item())


def test_targets_spell_the_normalised_transcript():
    flat, lengths = ctc_training.targets(["Is it red?", "a b"])
    assert lengths.tolist() == [9, 3]
    spelt = "".join(ctc.CHARACTERS[i - 1] for i in flat.tolist())
    assert spelt == "is it reda b"
    assert ctc.BLANK not in flat.tolist()


def test_a_character_outside_the_vocabulary_is_refused_and_counted():
    with pytest.raises(ValueError, match="outside the CTC vocabulary"):
        ctc_training.encode("naïve")
    assert ctc_training.unknown_characters(["naïve", "café", "plain"]) == {"ï": 1, "é": 1}


def test_greedy_decode_merges_repeats_and_drops_blanks_within_the_clip():
    a, b, space = (ctc.CHARACTERS.index(c) + 1 for c in "ab ")
    path = [a, a, 0, a, space, b, b, 0, b, a]  # "a a" then " " then "bb" ... the last frame is padding
    one_hot = torch.nn.functional.one_hot(torch.tensor([path]), len(ctc.CHARACTERS) + 1).float()
    assert ctc.greedy_decode(one_hot, torch.tensor([9])) == ["aa bb"]


def test_frame_lengths_follow_the_conv_stem_halving():
    mask = torch.tensor([[1] * 7 + [0] * 3, [1] * 10])
    assert ctc.frame_lengths(mask, 5).tolist() == [4, 5]


def test_spec_augment_masks_bands_and_spans_inside_the_clip_only():
    torch.manual_seed(0)
    features = torch.randn(4, 80, 100) + 5.0
    mask = torch.zeros(4, 100, dtype=torch.long)
    mask[:, :60] = 1
    before = features.clone()
    out = ctc.spec_augment(features, mask, generator=torch.Generator().manual_seed(1))
    assert out.shape == features.shape and not torch.equal(out, features)
    changed = out != features
    for i in range(4):
        frames = changed[i].all(dim=0)  # a time mask covers every bin of its frames
        assert not frames[60:].any(), "a time mask fell in the padding"
        assert changed[i].sum() <= 2 * 15 * 100 + 2 * 12 * 80
        fill = features[i, :, :60].mean()
        assert torch.allclose(out[i][changed[i]], fill.expand(int(changed[i].sum())))
    assert torch.equal(features, before)  # the input is not touched


def test_spec_augment_is_seeded_by_its_generator():
    x, mask = torch.randn(2, 80, 50), torch.ones(2, 50, dtype=torch.long)
    one = ctc.spec_augment(x, mask, generator=torch.Generator().manual_seed(3))
    two = ctc.spec_augment(x, mask, generator=torch.Generator().manual_seed(3))
    assert torch.equal(one, two)


def test_speed_perturbation_resamples_the_clip_in_time_and_moves_its_mask():
    features = torch.full((2, 3, 120), -1.0)
    ramp = torch.linspace(0, 1, 100)
    features[:, :, :100] = ramp  # a clip of 100 frames, then padding
    mask = torch.zeros(2, 120, dtype=torch.long)
    mask[:, :100] = 1
    faster, faster_mask = ctc.speed_perturb(features, mask, factors=(1.1,))
    assert faster_mask.sum(dim=1).tolist() == [91, 91]  # round(100 / 1.1)
    assert torch.allclose(faster[0, 0, :91], torch.linspace(0, 1, 91), atol=1e-6)  # the same ramp, fewer frames
    assert (faster[0, :, 91:] == -1.0).all()  # the clip's own padding value after it
    slower, slower_mask = ctc.speed_perturb(features, mask, factors=(0.9,))
    assert slower_mask.sum(dim=1).tolist() == [111, 111]
    too_long, too_long_mask = ctc.speed_perturb(features, mask, factors=(0.5,))  # 200 frames: does not fit
    assert torch.equal(too_long, features) and torch.equal(too_long_mask, mask)
    assert mask.sum().item() == 200  # the input mask is not touched


def test_vocal_tract_perturbation_warps_the_mel_axis_below_the_boundary_and_pins_the_top():
    """A ramp over 11 bins (bin k holds k, constant in time) read through the warp holds the source
    positions: k·α up to the boundary (0.8 × the top bin = 8), then the segment to the top bin 10
    stretched so the top stays. α is drawn from [1 − w, 1 + w]; at w = 0 nothing changes.
    Mutations: the top not pinned (k·α everywhere, clamped) → the last assert of the α > 1 case fails;
    α drawn from [1, 1 + w] only → the range assert fails."""
    ramp = torch.arange(11, dtype=torch.float32)[None, :, None].expand(400, 11, 3).contiguous()
    assert torch.equal(ctc.vocal_tract_perturb(ramp, 0.0), ramp)
    warped = ctc.vocal_tract_perturb(ramp, 0.1, generator=torch.Generator().manual_seed(0))
    alpha = warped[:, 5, 0] / 5  # bin 5 reads bin 5·α
    assert alpha.min() < 0.92 and alpha.max() > 1.08 and ((alpha >= 0.9 - 1e-6) & (alpha <= 1.1 + 1e-6)).all()
    for i in range(400):
        a = float(alpha[i])
        expected = [k * a for k in range(9)] + [8 * a + (k - 8) * (10 - 8 * a) / 2 for k in (9, 10)]
        assert torch.allclose(warped[i, :, 0], torch.tensor(expected), atol=1e-4), (a, warped[i, :, 0])
    assert torch.allclose(warped[:, 10, :], torch.full((400, 3), 10.0))  # the top bin stays
    with pytest.raises(ValueError, match="0.2"):
        ctc.vocal_tract_perturb(ramp, 0.3)


def test_augment_warps_only_when_asked(monkeypatch):
    calls = []
    real = ctc.vocal_tract_perturb
    monkeypatch.setattr(ctc, "vocal_tract_perturb", lambda f, w, generator=None: calls.append(w) or real(f, w, generator))
    x, mask = torch.randn(2, 80, 50), torch.ones(2, 50, dtype=torch.long)
    ctc.augment(x, mask)
    ctc.augment(x, mask, warp=0.1)
    assert calls == [0.0, 0.1]



def test_augment_masks_with_the_policy_given():
    """``masks`` reaches SpecAugment: with no masks at all and no frame mask (so no speed change)
    the features come back unchanged, while the default policy masks them (mutation: ``masks`` not
    passed on → the first assertion fails)."""
    x = torch.randn(2, 80, 50)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    unmasked, _ = ctc.augment(x, None, generator=gen(), masks={"time_masks": 0, "freq_masks": 0})
    assert torch.equal(unmasked, x)
    default, _ = ctc.augment(x, None, generator=gen())
    assert not torch.equal(default, x)

def brute_force(rows, characters):
    """{transcript: probability} over every frame-level path of ``rows`` (per-frame [blank, chars…])."""
    import itertools

    out = {}
    for path in itertools.product(range(len(rows[0])), repeat=len(rows)):
        chars, previous = [], 0
        for s in path:
            if s != previous and s != 0:
                chars.append(characters[s - 1])
            previous = s
        p = math.prod(rows[t][s] for t, s in enumerate(path))
        out["".join(chars)] = out.get("".join(chars), 0.0) + p
    return out


def test_prefix_scores_sum_every_transcript_that_starts_with_the_prefix():
    # four frames over blank, 'a', 'b': ψ(h) by enumerating all 81 paths (Watanabe et al. 2017, Alg. 2)
    rows = [[0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.1, 0.7, 0.2], [0.6, 0.1, 0.3]]
    totals = brute_force(rows, "ab")
    scorer = ctc.PrefixScorer(log_probs(rows)[0], "ab")
    for prefix in ["a", "b", "aa", "ab", "ba", "bab", "aab", "abab"]:
        psi = sum(p for text, p in totals.items() if text.startswith(prefix))
        assert math.exp(scorer.state(prefix).psi) == pytest.approx(psi, rel=1e-9), prefix
        assert math.exp(scorer.state(prefix).full) == pytest.approx(totals.get(prefix, 0.0), rel=1e-9, abs=1e-15)
    assert math.exp(scorer.state("").full) == pytest.approx(totals[""], rel=1e-9)  # all blanks
    assert scorer.state("a c") is None  # characters the head cannot spell


def test_a_prefix_full_probability_equals_the_ctc_loss():
    torch.manual_seed(0)
    lp = torch.randn(12, 6, dtype=torch.float64).log_softmax(-1)
    scorer = ctc.PrefixScorer(lp, "abcde")
    loss = ctc.ctc_loss(lp[None], torch.tensor([12]), torch.tensor([1, 2, 2, 3]), torch.tensor([4]))
    assert -scorer.state("abbc").full / 4 == pytest.approx(loss.item(), rel=1e-6)  # ctc_loss runs in float32
