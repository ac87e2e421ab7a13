import pytest
import torch

from mbmlab.evaluate import generate
from mbmlab.models import text, vision
from mbmlab.models.fused import MbmConfig, MbmForConditionalGeneration, build_projector


def image_prompt(model, tokenizer, prompt):
    return torch.tensor([[model.config.image_token_id] * model.config.num_image_tokens + tokenizer(prompt).input_ids])


def test_placeholders_must_match_images(fused_model, tokenizer, pixels):
    ids = image_prompt(fused_model, tokenizer, "caption:")[:, 1:]  # one placeholder short
    with pytest.raises(ValueError, match="placeholders"):
        fused_model(input_ids=ids, pixel_values=pixels[:1])


def test_the_image_changes_the_output(fused_model, tokenizer, pixels):
    ids = image_prompt(fused_model, tokenizer, "caption:")
    with torch.no_grad():
        a = fused_model(input_ids=ids, pixel_values=pixels[:1]).logits
        b = fused_model(input_ids=ids, pixel_values=pixels[1:2]).logits
    assert (a - b).abs().max() > 1e-4


def test_decoder_is_causal(fused_model, tokenizer, pixels):
    """Changing a later token must not change earlier logits (a broken mask lets training cheat)."""
    ids = image_prompt(fused_model, tokenizer, "question: what color is the shape? answer: blue")
    changed = ids.clone()
    changed[0, -1] = tokenizer.convert_tokens_to_ids("<pad>")
    with torch.no_grad():
        a = fused_model(input_ids=ids, pixel_values=pixels[:1]).logits
        b = fused_model(input_ids=changed, pixel_values=pixels[:1]).logits
    assert torch.equal(a[:, :-1], b[:, :-1])


def test_image_index_reuses_encoded_images(fused_model, tokenizer, pixels):
    ids = image_prompt(fused_model, tokenizer, "caption:").repeat(3, 1)
    with torch.no_grad():
        direct = fused_model(input_ids=ids, pixel_values=pixels[[1, 0, 1]]).logits
        indexed = fused_model(input_ids=ids, pixel_values=pixels[:2], image_index=torch.tensor([1, 0, 1])).logits
    torch.testing.assert_close(direct, indexed)


def test_save_and_reload_gives_identical_logits(fused_model, tokenizer, pixels, tmp_path):
    fused_model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    reloaded = MbmForConditionalGeneration.from_pretrained(tmp_path)
    ids = image_prompt(fused_model, tokenizer, "caption:")
    with torch.no_grad():
        assert torch.equal(fused_model(input_ids=ids, pixel_values=pixels[:1]).logits,
                           reloaded(input_ids=ids, pixel_values=pixels[:1]).logits)
    assert reloaded.config.fusion == "prefix"
    assert reloaded.config.num_image_tokens == fused_model.config.num_image_tokens


PROMPTS = ["caption:", "question: what color is the shape? answer:", "question: is there a red shape? answer:"]


def test_greedy_generation_same_with_and_without_kv_cache(fused_model, tokenizer, pixels):
    rows = [0, 1, 2]
    cached = generate(fused_model, tokenizer, pixels, rows, PROMPTS, max_new_tokens=6, progress=False)
    uncached = generate(fused_model, tokenizer, pixels, rows, PROMPTS, max_new_tokens=6, use_cache=False,
                        progress=False)
    assert cached == uncached
    assert any(cached)  # an untrained model still emits something


@pytest.mark.parametrize("num_beams", [1, 3])
def test_batch_generates_the_same_as_one_at_a_time(fused_model, tokenizer, pixels, num_beams):
    """Prompts of different lengths are left-padded in a batch; the output must not change."""
    rows = [0, 1, 2]
    batched = generate(fused_model, tokenizer, pixels, rows, PROMPTS, max_new_tokens=6, num_beams=num_beams,
                       progress=False)
    single = [generate(fused_model, tokenizer, pixels, [r], [p], max_new_tokens=6, num_beams=num_beams,
                       progress=False)[0] for r, p in zip(rows, PROMPTS)]
    assert batched == single


def test_from_parts_copies_the_trained_language_model(tokenizer):
    lm = text.new_language_model(tokenizer, dim=32, layers=1, heads=2, seed=3)
    from mbmlab.models import vision
    config = MbmConfig(vision_config=vision.vit_config(32, 8, 32, 1, 2), text_config=lm.config,
                       image_token_id=text.image_token_id(tokenizer))
    model = MbmForConditionalGeneration.from_parts(config, language_model=lm)
    for name, tensor in lm.state_dict().items():
        assert torch.equal(model.language_model.state_dict()[name], tensor), name


def test_unknown_projector_and_fusion_are_refused(tokenizer):
    with pytest.raises(ValueError, match="allowed values: linear, mlp2x_gelu"):
        build_projector("mlp9x", 4, 4)
    lm = text.new_language_model(tokenizer, dim=32, layers=1, heads=2, seed=0)
    from mbmlab.models import vision
    with pytest.raises(ValueError, match="unknown fusion"):
        MbmConfig(vision_config=vision.vit_config(32, 8, 32, 1, 2), text_config=lm.config, fusion="late")


def test_tokenizer_specials(tokenizer, tmp_path):
    assert tokenizer.eos_token == tokenizer.bos_token == text.EOS
    assert tokenizer.pad_token == text.PAD
    tokenizer.save_pretrained(tmp_path)
    from transformers import AutoTokenizer
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert text.image_token_id(again) == text.image_token_id(tokenizer)
    assert again("caption: a red circle").input_ids == tokenizer("caption: a red circle").input_ids


def test_pixel_shuffle_hand_worked():
    from mbmlab.models.fused import pixel_shuffle
    # a 4×4 grid of 1-d patches numbered row by row; f=2 gathers each 2×2 block into one token
    grid = torch.arange(16.0).reshape(1, 16, 1)
    out = pixel_shuffle(grid, 2)
    assert out.shape == (1, 4, 4)
    assert out[0].tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    assert pixel_shuffle(grid, 1) is grid


def test_pixel_shuffle_model_reads_fewer_tokens(tokenizer, pixels):
    from mbmlab.models import vision
    lm = text.new_language_model(tokenizer, dim=32, layers=1, heads=2, seed=0)
    config = MbmConfig(vision_config=vision.vit_config(32, 8, 32, 1, 2), text_config=lm.config,
                       image_token_id=text.image_token_id(tokenizer), pixel_shuffle=2)
    assert config.num_image_tokens == 4
    model = MbmForConditionalGeneration.from_parts(config, language_model=lm).eval()
    assert generate(model, tokenizer, pixels, [0], ["caption:"], max_new_tokens=3, progress=False)
    with pytest.raises(ValueError, match="must divide"):
        MbmConfig(vision_config=vision.vit_config(32, 8, 32, 1, 2), text_config=lm.config, pixel_shuffle=3)



def test_from_parts_copies_a_trained_vit(tokenizer):
    from transformers import ViTModel

    lm = text.new_language_model(tokenizer, dim=32, layers=1, heads=2, seed=0)
    vit_config = vision.vit_config(32, 8, 32, 1, 2)
    config = MbmConfig(vision_config=vit_config, text_config=lm.config, image_token_id=text.image_token_id(tokenizer))
    torch.manual_seed(5)
    trained = ViTModel(vit_config)  # with a pooler, as AutoModel builds one; the fused model has none
    model = MbmForConditionalGeneration.from_parts(config, language_model=lm, vision=trained)
    for name, weight in model.vision.state_dict().items():
        assert torch.equal(weight, trained.state_dict()[name]), name
    with pytest.raises(ValueError, match="does not match the ViT parameters"):
        vision.check_same_shape(vision.vit_config(32, 16, 32, 1, 2), vit_config)
    vision.check_same_shape(trained.config, vit_config)
