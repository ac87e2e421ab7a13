"""Explanation maps: rollout on a hand-worked case, the grid and saliency paths on tiny models,
the sanity measures; the maps of a trained model are checked on the tiny series (test_notebooks)."""
import numpy as np
import pytest
import torch
from PIL import Image

import family
from mbmlab.analyses import explain


def test_rollout_hand_worked():
    # one layer, one head, 2 positions, A = [[1, 0], [0.5, 0.5]]:
    # ½A + ½I = [[1, 0], [0.25, 0.75]] (rows already sum to 1) — the rollout of one layer.
    a = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]]])
    assert torch.allclose(explain.rollout(a), torch.tensor([[1.0, 0.0], [0.25, 0.75]]))
    # two such layers: [[1, 0], [0.25, 0.75]]² = [[1, 0], [0.25 + 0.75·0.25, 0.75²]] = [[1, 0], [0.4375, 0.5625]]
    two = explain.rollout(torch.cat([a, a]))
    assert torch.allclose(two, torch.tensor([[1.0, 0.0], [0.4375, 0.5625]]))
    # heads are averaged first: heads [[1,0],[1,0]] and [[1,0],[0,1]] → [[1,0],[0.5,0.5]]
    heads = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]]])
    assert torch.allclose(explain.rollout(heads), explain.rollout(a))


def test_rank_correlation_hand_worked():
    assert explain.rank_correlation(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])) == pytest.approx(1.0)
    assert explain.rank_correlation(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])) == pytest.approx(-1.0)
    # ranks (1,2,3,4) and (2,1,4,3): d² = 1+1+1+1 = 4, ρ = 1 − 6·4/(4·15) = 0.6
    assert explain.rank_correlation(np.array([1, 2, 3, 4]), np.array([2, 1, 4, 3])) == pytest.approx(0.6)


def test_object_mask_and_share():
    canvas = np.full((8, 8, 3), 240, dtype=np.uint8)
    canvas[2:4, 2:6] = (200, 0, 0)  # an 8-pixel object
    mask = explain.object_mask(Image.fromarray(canvas), 8)
    assert mask.sum() == 8 and mask[2:4, 2:6].all()
    uniform = np.full((8, 8), 1 / 64)
    assert explain.object_share(uniform, mask) == pytest.approx(8 / 64)


@pytest.mark.parametrize("extra, kind", [(dict(image_connector="patches"), "rollout"),
                                         (dict(fusion="early", early_patch_size=8, early_audio_frames=10), "rollout"),
                                         (dict(image_connector="pooled"), "saliency")])
def test_maps_over_the_image_and_the_clip(tokenizer, extra, kind):
    model, processor = family.build(tokenizer, "gpt2", "resnet", **extra)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    e = explain.explain(model, processor, image=image, audio=family.clips(1)[0], max_new_tokens=2)
    assert e.image_map_kind == kind and e.image_map.shape == (32, 32)
    assert e.image_map.sum() == pytest.approx(1.0) and (e.image_map >= 0).all()
    assert e.audio_map.shape == (model.config.audio_seq_length,) and e.audio_map.sum() == pytest.approx(1.0)
    shares = e.shares()
    assert shares["image"] > 0 and shares["audio"] > 0 and sum(shares.values()) == pytest.approx(1.0, abs=1e-5)
    assert e.rollout.shape == (e.attention.shape[1],) and e.attention.shape[0] == model.config.text_config.n_layer
    if kind == "rollout":  # the grid path: each image position's rollout lands on its own patch
        grid = explain.image_grid(model.config)
        cell = 32 // grid[0]
        first = e.rollout[e.image_positions[0]] / e.rollout[e.image_positions].sum()
        assert e.image_map[:cell, :cell].sum() == pytest.approx(first)


def test_cross_attention_is_refused_with_the_reason(tokenizer):
    model, processor = family.build(tokenizer, "gpt2", "vit", fusion="cross_attention", image_connector="patches")
    with pytest.raises(ValueError, match="inside its gated blocks"):
        explain.explain(model, processor, image=Image.new("RGB", (32, 32)), question="what?")


def test_randomised_model_has_other_weights(tokenizer):
    model, _ = family.build(tokenizer, "gpt2", "resnet")
    other = explain.randomised(model, seed=1)
    assert type(other) is type(model)
    assert not torch.equal(model.lm_head.weight, other.lm_head.weight)


def test_smoothed_is_block_means():
    m = np.zeros((8, 8))
    m[0, 0] = 16.0
    s = explain.smoothed(m)
    assert s[:4, :4] == pytest.approx(np.ones((4, 4))) and s[4:, :].sum() == 0 and s.sum() == pytest.approx(16.0)


def test_object_share_of_a_map_on_the_object_is_one():
    mask = np.zeros((4, 4), dtype=bool)
    mask[1:3, 1:3] = True
    on_object = mask / mask.sum()
    assert explain.object_share(on_object, mask) == pytest.approx(1.0)
    assert explain.object_share(~mask / (~mask).sum(), mask) == 0.0


def test_sanity_verdict_is_the_rule_set_before_any_run():
    import pandas as pd

    # 6 images × (colour, shape): the trained maps put 0.3 on objects covering 0.1 of the image,
    # the randomised model's maps 0.1 — passes; the same with randomised maps as good — fails
    frame = pd.DataFrame({"image": np.repeat(np.arange(6), 2), "object_share": 0.3 + 0.01 * np.arange(12) % 3,
                          "object_share_randomised": 0.1, "object_area": 0.1, "rank_correlation": 0.2})
    metrics = explain.sanity_metrics(frame)
    assert metrics["explain/sanity_passed"] == 1.0
    assert metrics["explain/object_share/minus_randomised"] == pytest.approx(frame["object_share"].mean() - 0.1)
    as_good = frame.assign(object_share_randomised=frame["object_share"])
    assert explain.sanity_metrics(as_good)["explain/sanity_passed"] == 0.0


def test_the_randomised_model_explains_the_trained_models_token(tokenizer):
    model, processor = family.build(tokenizer, "gpt2", "resnet", image_connector="pooled")
    picture = family.pictures(1)[0]
    trained = explain.explain(model, processor, image=picture, question="what color is the shape?")
    noise = explain.randomised(model, seed=1)
    forced = explain.explain(noise, processor, image=picture, question="what color is the shape?",
                             continuation=trained.generated)
    assert forced.generated == trained.generated and forced.token == trained.token
