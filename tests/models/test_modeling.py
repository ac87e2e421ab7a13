"""MbmModel / MbmForConditionalGeneration: save and Auto-class load, causality, the KV cache, batched generation, every fusion strategy."""
import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

import family
from family import COMBOS, EXAMPLES, IDS, inputs, pictures
from mbmlab.metrics.generate import generate
from mbmlab.models import MbmForConditionalGeneration, MbmProcessor


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
    from mbmlab.training.fused import cross_attention_layers
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


def test_a_truncated_fused_model_is_refused_by_ask_naming_the_file(tokenizer, tmp_path, capsys):
    """A run whose fused/model.safetensors was cut short (a full disk, a copy interrupted): `mbmlab
    ask` exits 2 naming the file and the notebook to rerun, not a SafetensorError traceback; a
    damaged config.json the same. Mutation: load_fused without check_model_folder fails here."""
    from mbmlab.lab import cli

    model, processor = family.build(tokenizer, "gpt2", "resnet")
    folder = tmp_path / "run" / "fused"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert cli.main(["ask", str(tmp_path / "run"), "--question", "what shape is it?"]) == 2
    err = capsys.readouterr().err
    assert f"{weights} cannot be read" in err and "rerun 03_fuse" in err and "Traceback" not in err
    model.save_pretrained(folder)  # mended weights, a damaged config
    (folder / "config.json").write_text('{"model_type": "mbm", ')
    assert cli.main(["ask", str(tmp_path / "run"), "--question", "what shape is it?"]) == 2
    assert f"{folder / 'config.json'} is not valid JSON" in capsys.readouterr().err


def test_attend_reads_the_prompt_but_never_the_target(tokenizer):
    """The attend connector reads the image for the prompt: another question changes the image
    tokens; in a training row (labels given) the target is not prompt, so changing a target token
    changes no logit before it, and the prompt it reads is the one generation reads."""
    model, processor = family.build(tokenizer, "gpt2", "resnet", image_connector="attend", attend_dim=16)
    prompt = processor.prompt("vqa", "what color is the shape?")
    other = processor.prompt("vqa", "what shape is it?")
    image = pictures(1)
    with torch.no_grad():
        a = model(**processor(text=prompt, images=image)).logits
        b = model(**processor(text=other, images=image)).logits
    assert not torch.allclose(a[0, 0], b[0, 0])  # the first position already differs: the image tokens
    row = processor(text=prompt + " blue red", images=image)
    labels = row["input_ids"].clone()
    labels[0, :a.shape[1]] = -100  # the target: the tokens after the prompt
    changed = row["input_ids"].clone()
    changed[0, -1] = tokenizer.convert_tokens_to_ids("<pad>")
    with torch.no_grad():
        x = model(**row, labels=labels).logits
        y = model(**dict(row, input_ids=changed), labels=labels).logits
        prompt_only = model(**processor(text=prompt, images=image)).logits
    assert torch.equal(x[:, :-1], y[:, :-1])
    torch.testing.assert_close(x[:, :a.shape[1]], prompt_only)
    with pytest.raises(ValueError, match="reads the image for a prompt"):
        model.model.get_image_features(row["pixel_values"])


def test_the_attend_connector_keeps_pytorch_initialisation(tokenizer):
    """transformers' generic init draws every linear and convolution from N(0, 0.02); the attend
    connector's layers keep PyTorch's (uniform ±1/√fan_in), or its queries and keys start so small
    that every head reads the grid's plain mean. Mutation: the ``keeps_torch_init`` branch of
    ``MbmPreTrainedModel._init_weights`` removed → the queries' std is 0.02 and this fails."""
    model, _ = family.build(tokenizer, "gpt2", "resnet", image_connector="attend", attend_dim=64)
    attend = model.model.image_projector.attend
    bound = 1 / 64 ** 0.5  # kaiming_uniform(a=√5) on fan_in 64: U(±1/√64), std = bound/√3
    assert abs(float(attend.queries.weight.std()) - bound / 3 ** 0.5) < 0.005
    assert float(attend.queries.weight.abs().max()) > 0.1
