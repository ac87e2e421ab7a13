"""The fused model family: configs, towers from several backbone families, the processor,
save → Auto-class load, generation with and without the KV cache, batched vs one at a time."""
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

import family
from mbmlab.data.tasks import Example
from mbmlab.evaluate import generate
from mbmlab.models import MbmConfig, MbmForConditionalGeneration, MbmProcessor, text
from mbmlab.models.connectors import build_projector, frame_pool, patch_states, pixel_shuffle

# every backbone family the README names (two LM families, ResNet, ViT, CLIP's vision tower,
# Whisper), both image connectors, the resampler and all three fusion strategies
COMBOS = [
    ("gpt2", "resnet", dict(image_connector="pooled")),
    ("gpt2", "vit", dict(image_connector="patches")),
    ("llama", "clip", dict(image_connector="pooled")),
    ("llama", "resnet", dict(image_connector="patches")),
    ("gpt2", "vit", dict(image_connector="patches", image_projector="resampler", audio_projector="resampler",
                         resampler_queries=3)),
    ("gpt2", "vit", dict(fusion="cross_attention", image_connector="patches")),
    ("llama", "resnet", dict(fusion="cross_attention", image_connector="pooled", image_projector="resampler",
                             cross_attention_layers=[1])),
    ("gpt2", "vit", dict(fusion="early", early_patch_size=8, early_audio_frames=10)),
    ("llama", "resnet", dict(fusion="early", early_patch_size=16, early_audio_frames=25)),
]
IDS = [f"{lm}-{tower}-" + "-".join(str(v) for v in extra.values()) for lm, tower, extra in COMBOS]


def pictures(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)) for _ in range(n)]


def inputs(processor, n=2):
    prompts = [processor.prompt("spoken_vqa"), processor.prompt("vqa", "what color is the shape?")][:n]
    return processor(text=prompts, images=pictures(n), audio=family.clips(1))


@pytest.mark.parametrize("lm, tower, extra", COMBOS, ids=IDS)
def test_save_and_auto_class_load_give_identical_logits(tokenizer, tmp_path, lm, tower, extra):
    model, processor = family.build(tokenizer, lm, tower, **extra)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path)
    reloaded_processor = AutoProcessor.from_pretrained(tmp_path)
    assert type(reloaded) is MbmForConditionalGeneration and type(reloaded_processor) is MbmProcessor
    batch = inputs(processor)
    assert torch.equal(batch["input_ids"], inputs(reloaded_processor)["input_ids"])
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, reloaded.eval()(**batch).logits)
    # the head stays tied to the LM's input embeddings, whatever the LM calls them
    assert reloaded.lm_head.weight is reloaded.get_input_embeddings().weight


@pytest.mark.parametrize("lm, tower, extra", COMBOS, ids=IDS)
def test_processor_places_as_many_placeholders_as_the_towers_emit(tokenizer, lm, tower, extra):
    model, processor = family.build(tokenizer, lm, tower, **extra)
    batch = processor(text=processor.prompt("spoken_vqa"), images=pictures(1), audio=family.clips(1))
    with torch.no_grad():
        image_tokens = model.model.get_image_features(batch["pixel_values"]).shape[1]
        audio_tokens = model.model.get_audio_features(batch["input_features"]).shape[1]
    ids = batch["input_ids"][0]
    # prefix and early: one position per token; cross_attention: one marker per image or clip
    per_image, per_clip = (image_tokens, audio_tokens) if model.config.fusion != "cross_attention" else (1, 1)
    assert int((ids == processor.image_token_id).sum()) == per_image == model.config.image_seq_length
    assert int((ids == processor.audio_token_id).sum()) == per_clip == model.config.audio_seq_length
    if extra.get("image_projector") == "resampler":
        assert image_tokens == model.config.resampler_queries
    if extra.get("audio_projector") == "resampler":
        assert audio_tokens == model.config.resampler_queries


def test_placeholder_counts_that_do_not_add_up_are_refused(tokenizer):
    model, processor = family.build(tokenizer)
    batch = processor(text=processor.prompt("caption"), images=pictures(1))
    with pytest.raises(ValueError, match="placeholders"):
        model(input_ids=batch["input_ids"][:, 1:], pixel_values=batch["pixel_values"])
    with pytest.raises(ValueError, match="2 images for 1 <image> placeholders"):
        processor(text=processor.prompt("caption"), images=pictures(2))


@pytest.mark.parametrize("lm", ["gpt2", "llama"])
def test_from_parts_on_text_alone_is_the_language_model(tokenizer, lm):
    """Reference: with no image or audio, the fused model must compute exactly its LM."""
    language_model, vision_tower, audio_tower = family.parts(tokenizer, lm, "resnet", seed=3)
    model, _ = family.build(tokenizer, lm, "resnet")
    fused = MbmForConditionalGeneration.from_parts(model.config, language_model, vision_tower, audio_tower).eval()
    ids = torch.tensor([tokenizer("question: what color is the shape? answer: blue").input_ids])
    with torch.no_grad():
        assert torch.equal(fused(input_ids=ids).logits, language_model.eval()(input_ids=ids).logits)
    for name, weight in vision_tower.state_dict().items():
        assert torch.equal(fused.model.vision_tower.state_dict()[name], weight), name
    for name, weight in audio_tower.state_dict().items():
        assert torch.equal(fused.model.audio_tower.state_dict()[name], weight), name


def test_decoder_is_causal(tokenizer):
    """Changing a later token must not change earlier logits (a broken mask lets training cheat)."""
    model, processor = family.build(tokenizer)
    batch = processor(text=processor.prompt("vqa", "what color is the shape?") + " blue", images=pictures(1))
    changed = batch["input_ids"].clone()
    changed[0, -1] = tokenizer.convert_tokens_to_ids("<pad>")
    with torch.no_grad():
        a = model(**batch).logits
        b = model(input_ids=changed, pixel_values=batch["pixel_values"]).logits
    assert torch.equal(a[:, :-1], b[:, :-1])


def test_image_index_reuses_encoded_images(tokenizer):
    model, processor = family.build(tokenizer)
    batch = processor(text=[processor.prompt("caption")] * 3, images=pictures(3))
    pixels = batch["pixel_values"]
    with torch.no_grad():
        direct = model(input_ids=batch["input_ids"], pixel_values=pixels[[1, 0, 1]]).logits
        indexed = model(input_ids=batch["input_ids"], pixel_values=pixels[:2], image_index=torch.tensor([1, 0, 1])).logits
    torch.testing.assert_close(direct, indexed)


EXAMPLES = [Example("vqa", 0, None, "what color is the shape?", ""), Example("caption", 1, None, "", ""),
            Example("asr", None, 0, "", ""), Example("spoken_vqa", 2, 1, "", ""),
            Example("vqa", 2, None, "is there a red shape?", "")]


def model_inputs(processor):
    return processor.pixel_values(pictures(3)), processor.audio_features(family.clips(2))


@pytest.mark.parametrize("lm, tower, extra", COMBOS, ids=IDS)
def test_greedy_generation_same_with_and_without_kv_cache(tokenizer, lm, tower, extra):
    model, processor = family.build(tokenizer, lm, tower, **extra)
    pixels, features = model_inputs(processor)
    cached = generate(model, processor, EXAMPLES, pixels, features, max_new_tokens=6, progress=False)
    uncached = generate(model, processor, EXAMPLES, pixels, features, max_new_tokens=6, use_cache=False,
                        progress=False)
    assert cached == uncached
    assert any(cached)  # an untrained model still emits something


@pytest.mark.parametrize("lm, tower, extra", COMBOS, ids=IDS)
@pytest.mark.parametrize("num_beams", [1, 3])
def test_batch_generates_the_same_as_one_at_a_time(tokenizer, lm, tower, extra, num_beams):
    """Prompts of different lengths are left-padded in a batch; the output must not change."""
    model, processor = family.build(tokenizer, lm, tower, **extra)
    pixels, features = model_inputs(processor)
    batched = generate(model, processor, EXAMPLES, pixels, features, max_new_tokens=6, num_beams=num_beams,
                       progress=False)
    single = [generate(model, processor, [ex], pixels, features, max_new_tokens=6, num_beams=num_beams,
                       progress=False)[0] for ex in EXAMPLES]
    assert batched == single


def test_processor_prompts_and_training_rows(tokenizer):
    _, processor = family.build(tokenizer)
    assert processor.prompt("vqa", "what?") == "<image>question: what? answer:"
    assert processor.prompt("asr") == "<audio>transcribe:"
    # after the placeholder the text tokenises exactly as the LM's corpus line does
    ids = tokenizer(processor.prompt("vqa", "what color is the shape?"))["input_ids"]
    assert ids[1:] == tokenizer(text.text_prompt("vqa", "what color is the shape?"))["input_ids"]
    with pytest.raises(ValueError, match="unknown task 'dance'"):
        processor.prompt("dance")
    prompt = processor.prompt_ids([processor.prompt("spoken_vqa")])[0]
    assert prompt.count(processor.image_token_id) == processor.image_seq_length
    assert prompt.count(processor.audio_token_id) == processor.audio_seq_length
    target = processor.target_ids(["blue"])[0]
    assert target[-1] == tokenizer.eos_token_id and tokenizer.decode(target[:-1]) == " blue"
    ids, labels = processor.training_row(prompt, target)
    assert ids == prompt + target and labels == [-100] * len(prompt) + target


def test_tokenizer_specials(tokenizer, tmp_path):
    assert tokenizer.eos_token == tokenizer.bos_token == text.EOS
    assert tokenizer.pad_token == text.PAD
    tokenizer.save_pretrained(tmp_path)
    from transformers import AutoTokenizer
    again = AutoTokenizer.from_pretrained(tmp_path)
    for token in (text.IMAGE, text.AUDIO):
        assert text.token_id(again, token) == text.token_id(tokenizer, token)
    assert again("caption: a red circle").input_ids == tokenizer("caption: a red circle").input_ids


def test_unknown_projector_and_fusion_are_refused(tokenizer):
    with pytest.raises(ValueError, match="allowed values: linear, mlp2x_gelu, resampler"):
        build_projector("mlp9x", 4, 4)
    config = text.gpt2_config(tokenizer, 32, 1, 2)
    with pytest.raises(ValueError, match="unknown fusion"):
        MbmConfig(text_config=config, fusion="late")
    with pytest.raises(ValueError, match="needs image_token_id"):
        MbmConfig(text_config=config, vision_config=family.vision_config("vit"))


def test_pixel_shuffle_hand_worked():
    # a 4×4 grid of 1-d patches numbered row by row; f=2 gathers each 2×2 block into one token
    grid = torch.arange(16.0).reshape(1, 16, 1)
    out = pixel_shuffle(grid, 2)
    assert out.shape == (1, 4, 4)
    assert out[0].tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    assert pixel_shuffle(grid, 1) is grid
    with pytest.raises(ValueError, match="pixel shuffle 3"):
        pixel_shuffle(grid, 3)


def test_frame_pool_hand_worked():
    # 5 frames [1, 2, 3, 4, 5] pooled by 2: (1+2)/2, (3+4)/2, and the short last window 5/1
    frames = torch.tensor([1.0, 2, 3, 4, 5]).reshape(1, 5, 1)
    assert frame_pool(frames, 2).flatten().tolist() == [1.5, 3.5, 5.0]
    assert frame_pool(frames, 1) is frames


def test_patch_states_of_a_cnn_map_and_a_vit_sequence():
    cnn = torch.arange(8.0).reshape(1, 2, 2, 2)  # (N, C, h, w)
    assert patch_states(cnn)[0].tolist() == [[0, 4], [1, 5], [2, 6], [3, 7]]  # row by row, channels last
    vit = torch.randn(1, 1 + 4, 3)  # [CLS] + a 2×2 grid
    assert torch.equal(patch_states(vit), vit[:, 1:])


def test_pixel_shuffle_makes_fewer_image_tokens(tokenizer):
    model, processor = family.build(tokenizer, "gpt2", "vit", image_connector="patches", image_pixel_shuffle=2)
    assert model.config.image_seq_length == 4  # a 4×4 patch grid, 2×2 blocks
    pooled, _ = family.build(tokenizer, "gpt2", "vit", image_connector="pooled", image_prefix_length=3)
    assert pooled.config.image_seq_length == 3
    assert generate(model, processor, EXAMPLES[:1], processor.pixel_values(pictures(1)), max_new_tokens=3,
                    progress=False)


# ---------------------------------------------------------------- the fusion strategies

FUSION_STRATEGIES = ["prefix", "cross_attention", "early"]


@pytest.mark.parametrize("fusion", FUSION_STRATEGIES)
def test_every_strategy_sees_the_image_and_hears_the_clip(tokenizer, fusion):
    model, processor = family.build(tokenizer, "gpt2", "resnet", fusion=fusion)
    prompt = processor.prompt("spoken_vqa")
    a = processor(text=prompt, images=pictures(1, seed=0), audio=family.clips(1, seed=0))
    b = processor(text=prompt, images=pictures(1, seed=1), audio=family.clips(1, seed=0))
    c = processor(text=prompt, images=pictures(1, seed=0), audio=family.clips(1, seed=1))
    with torch.no_grad():
        la, lb, lc = (model(**x).logits[:, -1] for x in (a, b, c))
    assert not torch.equal(la, lb) and not torch.equal(la, lc)


@pytest.mark.parametrize("fusion", FUSION_STRATEGIES)
def test_every_strategy_keeps_the_decoder_causal(tokenizer, fusion):
    model, processor = family.build(tokenizer, "llama", "vit", fusion=fusion)
    batch = processor(text=processor.prompt("spoken_vqa") + " blue", images=pictures(1), audio=family.clips(1))
    changed = dict(batch, input_ids=batch["input_ids"].clone())
    changed["input_ids"][0, -1] = tokenizer.convert_tokens_to_ids("<pad>")
    with torch.no_grad():
        assert torch.equal(model(**batch).logits[:, :-1], model(**changed).logits[:, :-1])


@pytest.mark.parametrize("lm", ["gpt2", "llama"])
def test_cross_attention_gates_start_closed_so_the_fused_model_is_its_language_model(tokenizer, lm):
    """Flamingo's initialisation: tanh(0) = 0, so before training the image and the clip change
    nothing and the fused model computes exactly its LM, markers included."""
    language_model, vision_tower, audio_tower = family.parts(tokenizer, lm, "vit", seed=3)
    model, processor = family.build(tokenizer, lm, "vit", fusion="cross_attention")
    fused = MbmForConditionalGeneration.from_parts(model.config, language_model, vision_tower, audio_tower).eval()
    gates = [p for n, p in fused.named_parameters() if n.endswith("_gate")]
    assert len(gates) == 2 * 2 and all(float(g.detach()) == 0.0 for g in gates)  # 2 layers × (attention, feed-forward)
    batch = processor(text=processor.prompt("spoken_vqa"), images=pictures(1), audio=family.clips(1))
    with torch.no_grad():
        assert torch.equal(fused(**batch).logits, language_model.eval()(input_ids=batch["input_ids"]).logits)
        family.open_gates(fused, 0.5)
        assert not torch.equal(fused(**batch).logits, language_model(input_ids=batch["input_ids"]).logits)


def count_calls(module):
    calls = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_cross_attention_reads_the_media_once_per_generation_with_the_cache(tokenizer):
    """With the KV cache the image is encoded and the blocks' keys and values are made once per
    generation; without it, at every step; the scores of every step agree."""
    model, processor = family.build(tokenizer, "gpt2", "vit", fusion="cross_attention", cross_attention_layers=[0])
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    batch = processor(text=[processor.prompt("caption")] * 2, images=pictures(2))
    tower = count_calls(model.model.vision_tower)
    block = model.model.fusion.blocks["0"]
    made = []
    original = block.keys_values
    block.keys_values = lambda media: made.append(1) or original(media)
    scores = {}
    for use_cache in (True, False):
        tower.clear(), made.clear()
        out = model.generate(**batch, max_new_tokens=5, min_new_tokens=5, do_sample=False, use_cache=use_cache,
                             output_scores=True, return_dict_in_generate=True)
        scores[use_cache] = torch.stack(out.scores)
        assert (len(tower), len(made)) == ((1, 1) if use_cache else (5, 5))
    torch.testing.assert_close(scores[True], scores[False])


def test_cross_attention_layers_and_markers(tokenizer):
    model, processor = family.build(tokenizer, "gpt2", "vit", fusion="cross_attention", cross_attention_layers=[1])
    assert list(model.model.fusion.blocks) == ["1"] and model.config.image_seq_length == 1
    batch = processor(text=processor.prompt("caption"), images=pictures(1))
    twice = torch.cat([batch["input_ids"][:, :1], batch["input_ids"]], dim=1)
    with pytest.raises(ValueError, match="one <image> marker per row"):
        model(input_ids=twice, pixel_values=batch["pixel_values"])
    with pytest.raises(ValueError, match="1 rows with an <image> marker but 2 images"):
        model(input_ids=batch["input_ids"], pixel_values=processor.pixel_values(pictures(2)))
    with pytest.raises(ValueError, match="must name decoder layers"):
        family.build(tokenizer, "gpt2", "vit", fusion="cross_attention", cross_attention_layers=[2])
    from mbmlab.fuse import cross_attention_layers
    assert cross_attention_layers(4, 1) == [0, 1, 2, 3] and cross_attention_layers(4, 2) == [1, 3]
    assert cross_attention_layers(4, 4) == [3]


def test_a_deep_copy_of_a_cross_attention_model_uses_its_own_blocks(tokenizer):
    import copy

    model, processor = family.build(tokenizer, "gpt2", "vit", fusion="cross_attention")
    batch = processor(text=processor.prompt("caption"), images=pictures(1))
    with torch.no_grad():
        before = model(**batch).logits
        twin = copy.deepcopy(model)
        family.open_gates(twin, 0.0)  # closing the copy's gates must not touch the original
        assert torch.equal(model(**batch).logits, before)
        assert not torch.equal(twin(**batch).logits, before)


def test_early_fusion_has_no_towers_and_embeds_raw_patches(tokenizer):
    model, processor = family.build(tokenizer, "gpt2", "vit", fusion="early", early_patch_size=8,
                                    early_audio_frames=10)
    assert model.part("vision_tower") is None and model.part("audio_tower") is None
    assert model.config.image_seq_length == (32 // 8) ** 2 and model.config.audio_seq_length == 100 // 10  # 1 s = 100 log-mel frames
    # the first token is the first 8×8 patch (channel by channel, row by row) times the projection
    pixels = processor.pixel_values(pictures(1))
    patch = pixels[0, :, :8, :8].reshape(-1)
    projection = model.model.image_projector.proj
    with torch.no_grad():
        torch.testing.assert_close(model.model.get_image_features(pixels)[0, 0], projection(patch))
    _, vision_tower, audio_tower = family.parts(tokenizer, "gpt2", "vit")
    with pytest.raises(ValueError, match="has no vision_tower"):
        MbmForConditionalGeneration.from_parts(model.config, vision_tower=vision_tower)
    with pytest.raises(ValueError, match="early_patch_size=5 must divide"):
        family.build(tokenizer, "gpt2", "vit", fusion="early", early_patch_size=5)


def test_resampler_emits_its_queries_whatever_it_reads_and_ignores_their_order():
    """Perceiver attention has no positions: permuting the encoder states must not change the output."""
    from mbmlab.models.connectors import Resampler

    torch.manual_seed(0)
    resampler = Resampler(6, 16, queries=5).eval()
    states = torch.randn(2, 7, 6)
    out = resampler(states)
    assert out.shape == (2, 5, 16) and resampler(torch.randn(2, 30, 6)).shape == (2, 5, 16)
    torch.testing.assert_close(resampler(states[:, torch.randperm(7)]), out)
    assert resampler(torch.randn(2, 6)).shape == (2, 5, 16)  # a pooled vector: a sequence of one
