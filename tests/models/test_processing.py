"""MbmProcessor: placeholders, prompts and training rows, the tokenizer's special tokens."""
import pytest
import torch

import family
from family import COMBOS, IDS, pictures
from mbmlab.models import text


@pytest.mark.parametrize("lm, tower, extra", COMBOS, ids=IDS)
def test_processor_places_as_many_placeholders_as_the_towers_emit(tokenizer, lm, tower, extra):
    model, processor = family.build(tokenizer, lm, tower, **extra)
    batch = processor(text=processor.prompt("spoken_vqa"), images=pictures(1), audio=family.clips(1))
    with torch.no_grad():
        prompts = None  # the attend connector reads the image for the row's prompt
        if model.config.image_connector == "attend":
            prompts = model.model.image_prompts(batch["input_ids"], batch["attention_mask"])
        image_tokens = model.model.get_image_features(batch["pixel_values"], prompts=prompts).shape[1]
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
