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
# Whisper) and both image connectors
COMBOS = [("gpt2", "resnet", "pooled"), ("gpt2", "vit", "patches"), ("llama", "clip", "pooled"),
          ("llama", "resnet", "patches")]


def pictures(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)) for _ in range(n)]


def inputs(processor, n=2):
    prompts = [processor.prompt("spoken_vqa"), processor.prompt("vqa", "what color is the shape?")][:n]
    return processor(text=prompts, images=pictures(n), audio=family.clips(1))


@pytest.mark.parametrize("lm, tower, connector", COMBOS)
def test_save_and_auto_class_load_give_identical_logits(tokenizer, tmp_path, lm, tower, connector):
    model, processor = family.build(tokenizer, lm, tower, image_connector=connector)
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


@pytest.mark.parametrize("lm, tower, connector", COMBOS)
def test_processor_places_as_many_placeholders_as_the_towers_emit(tokenizer, lm, tower, connector):
    model, processor = family.build(tokenizer, lm, tower, image_connector=connector)
    batch = processor(text=processor.prompt("spoken_vqa"), images=pictures(1), audio=family.clips(1))
    with torch.no_grad():
        image_tokens = model.model.get_image_features(batch["pixel_values"]).shape[1]
        audio_tokens = model.model.get_audio_features(batch["input_features"]).shape[1]
    ids = batch["input_ids"][0]
    assert int((ids == processor.image_token_id).sum()) == image_tokens == model.config.image_seq_length
    assert int((ids == processor.audio_token_id).sum()) == audio_tokens == model.config.audio_seq_length


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


def test_the_image_and_the_clip_change_the_output(tokenizer):
    model, processor = family.build(tokenizer, "gpt2", "resnet")
    prompt = processor.prompt("spoken_vqa")
    a = processor(text=prompt, images=pictures(1, seed=0), audio=family.clips(1, seed=0))
    b = processor(text=prompt, images=pictures(1, seed=1), audio=family.clips(1, seed=0))
    c = processor(text=prompt, images=pictures(1, seed=0), audio=family.clips(1, seed=1))
    with torch.no_grad():
        la, lb, lc = (model(**x).logits[:, -1] for x in (a, b, c))
    assert not torch.equal(la, lb) and not torch.equal(la, lc)  # small at random init, but there


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


@pytest.mark.parametrize("lm, tower, connector", COMBOS)
def test_greedy_generation_same_with_and_without_kv_cache(tokenizer, lm, tower, connector):
    model, processor = family.build(tokenizer, lm, tower, image_connector=connector)
    pixels, features = model_inputs(processor)
    cached = generate(model, processor, EXAMPLES, pixels, features, max_new_tokens=6, progress=False)
    uncached = generate(model, processor, EXAMPLES, pixels, features, max_new_tokens=6, use_cache=False,
                        progress=False)
    assert cached == uncached
    assert any(cached)  # an untrained model still emits something


@pytest.mark.parametrize("lm, tower, connector", COMBOS)
@pytest.mark.parametrize("num_beams", [1, 3])
def test_batch_generates_the_same_as_one_at_a_time(tokenizer, lm, tower, connector, num_beams):
    """Prompts of different lengths are left-padded in a batch; the output must not change."""
    model, processor = family.build(tokenizer, lm, tower, image_connector=connector)
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
    with pytest.raises(ValueError, match="allowed values: linear, mlp2x_gelu"):
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
