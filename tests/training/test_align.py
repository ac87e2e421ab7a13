"""The attention formula, the contrastive loss and retrieval, the encoders and pretrained loading."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mbmlab.training import align
from mbmlab.models import attention, audio, text, vision


def test_attention_formula_by_hand():
    # one query, two keys (d_k = 4): scores (q·k)/2 = [1, 0] → weights [e/(e+1), 1/(e+1)]
    q = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])
    k = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]]])
    v = torch.tensor([[[10.0], [0.0]]])
    expected = 10 * math.e / (math.e + 1)
    assert attention.attention(q, k, v).item() == pytest.approx(expected, abs=1e-5)


def test_attention_matches_sdpa_causal_and_not():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8) for _ in range(3))
    for causal in (False, True):
        ours = attention.attention(q, k, v, causal=causal)
        assert torch.allclose(ours, F.scaled_dot_product_attention(q, k, v, is_causal=causal), atol=1e-6)


def test_attention_matches_gpt2_on_its_weights(tokenizer):
    lm = text.new_language_model(tokenizer, dim=32, layers=2, heads=4, seed=0)
    differences = attention.check_against_references(lm, torch.randint(0, len(tokenizer), (3, 12)))
    assert set(differences) == {"vs scaled_dot_product_attention", "vs GPT-2 attention layer"}
    assert all(d < 1e-5 for d in differences.values()), differences


def test_contrastive_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    # each row and column: -log(e² / (e² + 1)) = log(1 + e⁻²)
    assert align.contrastive_loss(logits, torch.tensor([0, 1])).item() == pytest.approx(math.log(1 + math.exp(-2)))
    # the same text twice: the target is spread over both columns, so equal logits cost only
    # the entropy of the target, log 2, from each side
    assert align.contrastive_loss(torch.zeros(2, 2), torch.tensor([0, 0])).item() == pytest.approx(math.log(2))


def test_contrastive_loss_is_clip_when_texts_differ():
    torch.manual_seed(0)
    logits = torch.randn(5, 5)
    labels = torch.arange(5)
    clip = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert torch.allclose(align.contrastive_loss(logits, labels), clip)


def image_model(tokenizer):
    lm = text.new_language_model(tokenizer, dim=32, layers=1, heads=2, seed=0)
    encoder = vision.new_image_encoder(vision.vit_config(32, 8, 32, 1, 2), seed=0)
    return align.ContrastiveModel(encoder, align.text_tower(lm), "image", embed_dim=16)


def pair_set(pixels, texts, rows=None):
    return align.PairSet({"pixel_values": pixels}, list(range(len(texts))) if rows is None else rows, texts)


def test_pairs_carry_their_own_inputs_and_the_collator_groups_equal_texts(tokenizer, pixels):
    pairs = align.Pairs(pair_set(pixels, ["a red circle", "a blue star", "a red circle"], rows=[2, 0, 1]))
    batch = align.PairCollator(tokenizer)([pairs[i] for i in range(3)])
    assert batch["text_group"].tolist() == [0, 1, 0]
    assert torch.equal(batch["pixel_values"], pixels[[2, 0, 1]])
    ends = batch["attention_mask"].sum(1) - 1
    assert (batch["input_ids"][torch.arange(3), ends] == tokenizer.eos_token_id).all()


def test_retrieval_counts_hits_among_distinct_texts(tokenizer, pixels):
    model = image_model(tokenizer)
    pairs = pair_set(pixels, ["a red circle", "a blue star", "a red circle"])
    scores = align.retrieval(model, tokenizer, pairs, ks=(1, 2))
    assert scores["texts"] == 2 and scores["chance@1"] == 0.5 and scores["recall@2"] == 1.0
    # make image 1 embed exactly like the text "a blue star": recall@1 must count it as a hit
    with torch.no_grad():
        t = align.encode_texts(model, tokenizer, ["a blue star", "a red circle"])
    model.encode_inputs = lambda pixel_values=None, **_: t[[1, 0, 1]][: len(pixel_values)]
    assert align.retrieval(model, tokenizer, pairs)["recall@1"] == 1.0


def colour_pairs(seed: int, repeats: int):
    generator = torch.Generator().manual_seed(seed)
    colours = {"red": (1.0, -1, -1), "green": (-1, 1.0, -1), "blue": (-1, -1, 1.0), "black": (-1, -1, -1.0)}
    names = [list(colours)[i % 4] for i in torch.randperm(4 * repeats, generator=generator).tolist()]
    pixels = torch.stack([torch.tensor(colours[n]).view(3, 1, 1).expand(3, 32, 32)
                          + 0.1 * torch.randn(3, 32, 32, generator=generator) for n in names])
    return pair_set(pixels, [f"a {n} circle" for n in names])


def test_align_encoder_learns_and_evaluates_on_the_validation_inputs(tokenizer, tmp_path):
    """Four colours and their names, through the function 02_train calls: recall beats chance,
    recall is logged per epoch and picks the best epoch, and the validation loss is computed on
    the validation images (not on training images at the same row numbers)."""
    from mbmlab.training.trainer import loss_history

    pairs = {"train": colour_pairs(0, 16), "validation": colour_pairs(1, 4), "test": colour_pairs(2, 4)}
    lm = text.new_language_model(tokenizer, dim=32, layers=1, heads=2, seed=0)
    encoder = vision.new_image_encoder(vision.vit_config(32, 8, 32, 1, 2), seed=0)
    model, trainer, before, after = align.align_encoder(
        "image", encoder, lm, tokenizer, pairs, tmp_path, embed_dim=16, epochs=25, batch_size=16,
        learning_rate=3e-3, seed=0)
    history = loss_history(trainer)
    assert history["eval_recall@1"].notna().sum() == 25  # one per epoch, beside eval_loss
    assert trainer.state.best_metric == history["eval_recall@1"].max()
    assert after["recall@1"] > 0.9 and before["recall@1"] < 0.75, (before, after)
    collate = align.PairCollator(tokenizer)
    validation = align.Pairs(pairs["validation"])
    with torch.no_grad():
        expected = model.eval()(**collate([validation[i] for i in range(len(validation))]))["loss"].item()
    assert trainer.evaluate()["eval_loss"] == pytest.approx(expected, rel=1e-5)


def test_recall_table_and_metric_names():
    before = {"n": 4.0, "texts": 2.0, "recall@1": 0.25, "recall@5": 1.0, "chance@1": 0.5, "chance@5": 1.0}
    after = dict(before, **{"recall@1": 0.75})
    metrics = align.recall_metrics({"image→text": (before, after)})
    assert metrics == {"align/image/recall@1": 0.75, "align/image/recall@5": 1.0,
                       "baseline/random_init/align/image/recall@1": 0.25,
                       "baseline/random_init/align/image/recall@5": 1.0,
                       "baseline/chance/align/image/recall@1": 0.5, "baseline/chance/align/image/recall@5": 1.0}
    row = align.recall_table({"image→text": (before, after)}).iloc[0]
    assert (row["recall@1"], row["random init @1"], row["distinct texts"]) == (0.75, 0.25, 2)


def test_saved_alignment_reloads_identically(tokenizer, pixels, tmp_path):
    model = image_model(tokenizer).eval()
    pairs = align.Pairs(pair_set(pixels, ["a red circle", "a blue star", "a star"]))
    batch = align.PairCollator(tokenizer)([pairs[i] for i in range(3)])
    model.save(tmp_path)
    again = align.ContrastiveModel.load(tmp_path)
    with torch.no_grad():
        assert torch.equal(model(**batch)["logits"], again(**batch)["logits"])


def test_whisper_encoder_on_log_mel_with_chunks_sized_to_clips(tokenizer):
    import datasets

    from mbmlab.data.clean import wav_bytes

    seconds = audio.chunk_seconds([0.8, 2.3, 1.1])
    assert seconds == 3
    rate = 16_000
    clips = datasets.Dataset.from_dict(
        {"audio": [{"bytes": wav_bytes(0.3 * np.sin(np.arange(int(d * rate)) / 10).astype(np.float32)), "path": None}
                   for d in (0.8, 2.3)]}, features=datasets.Features({"audio": datasets.Audio(sampling_rate=rate)}))
    features, mask = audio.log_mel(clips, audio.feature_extractor(seconds))
    assert features.shape == (2, audio.MEL_BINS, 300) and mask.shape == (2, 300)
    assert mask.sum(1).tolist() == [80, 230]  # 100 frames per second of clip
    encoder = audio.new_audio_encoder(seconds, dim=32, layers=1, heads=2, seed=0)
    model = align.ContrastiveModel(encoder, align.text_tower(text.new_language_model(tokenizer, 32, 1, 2, 0)),
                                   "audio", embed_dim=16)
    embedded = model.encode_inputs(input_features=features, frame_mask=mask)
    assert embedded.shape == (2, 16) and torch.allclose(embedded.norm(dim=1), torch.ones(2))
    assert encoder.config.max_source_positions == 150  # 50 per second after the stride-2 conv stem


def test_pretrained_encoders_and_lm_load_by_path(tokenizer, tmp_path):
    """The by-name code path (hub names need network), exercised on models saved locally."""
    vit = vision.new_image_encoder(vision.vit_config(32, 8, 32, 1, 2), seed=0)
    vit.save_pretrained(tmp_path / "vit")
    vision.image_processor(32).save_pretrained(tmp_path / "vit")
    encoder, processor = vision.load_image_encoder(str(tmp_path / "vit"))
    assert type(encoder).__name__ == "ViTModel" and processor.size["height"] == 32

    whisper = audio.new_audio_encoder(2, 32, 1, 2, seed=0)
    whisper.save_pretrained(tmp_path / "whisper")
    encoder, extractor = audio.load_audio_encoder(str(tmp_path / "whisper"))
    assert type(encoder).__name__ == "WhisperEncoder" and extractor.chunk_length == 2
    for a, b in zip(whisper.state_dict().values(), encoder.state_dict().values()):
        assert torch.equal(a, b)

    lm = text.new_language_model(tokenizer, 32, 1, 2, seed=0)
    lm.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    loaded_tokenizer = text.load_tokenizer(str(tmp_path / "lm"))
    loaded = text.load_language_model(str(tmp_path / "lm"), loaded_tokenizer)
    ids = torch.tensor([loaded_tokenizer("caption: a red circle")["input_ids"]])
    assert torch.equal(lm.eval()(ids).logits, loaded.eval()(ids).logits)
    assert text.token_id(loaded_tokenizer, text.IMAGE) == text.token_id(tokenizer, text.IMAGE)


def test_alignment_runs_with_a_llama_text_tower(tokenizer, pixels):
    """02_train with lm_name set to another LM family: the text tower is that LM's base model."""
    import family
    from transformers import AutoModelForCausalLM

    llama = AutoModelForCausalLM.from_config(family.text_config(tokenizer, "llama"))
    encoder = vision.new_image_encoder(vision.resnet_config(8, 1), seed=0)
    model = align.ContrastiveModel(encoder, align.text_tower(llama), "image", embed_dim=16)
    assert type(model.text).__name__ == "LlamaModel"
    batch = align.PairCollator(tokenizer)([align.Pairs(pair_set(pixels, ["a red circle", "a blue star"]))[i]
                                           for i in range(2)])
    out = model(**batch)
    out["loss"].backward()
    assert out["logits"].shape == (2, 2) and model.encoder_proj.weight.grad is not None


def test_a_clip_checkpoint_loads_as_its_vision_tower(tmp_path):
    """`image_encoder` naming a whole CLIP checkpoint: its vision tower is what 02 and 03 use."""
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                                     "num_attention_heads": 2, "vocab_size": 100},
                        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
                                       "num_hidden_layers": 1, "num_attention_heads": 2}, projection_dim=16)
    torch.manual_seed(0)
    clip = CLIPModel(config).eval()
    clip.save_pretrained(tmp_path)
    vision.image_processor(32).save_pretrained(tmp_path)
    encoder, processor = vision.load_image_encoder(str(tmp_path))
    assert type(encoder).__name__ == "CLIPVisionModel" and vision.input_size(encoder, processor) == 32
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(encoder.eval()(pixel_values=pixels).pooler_output,
                           clip.vision_model(pixel_values=pixels).pooler_output)
