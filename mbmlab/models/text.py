"""The GPT side: a byte-level BPE tokenizer and a small GPT-2 language model."""
from __future__ import annotations

from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from ..names import TRANSLATED_COLUMNS
from .processing_mbm import AUDIO, IMAGE, MbmProcessor

EOS = "<|endoftext|>"
PAD = "<pad>"
SPECIAL_TOKENS = (EOS, PAD, IMAGE, AUDIO)


def text_prompt(task: str, question: str = "", language: str = "") -> str:
    """A task's prompt without its placeholders: what the language model alone reads."""
    return MbmProcessor.prompt(task, question, language).replace(IMAGE, "").replace(AUDIO, "")


def corpus_lines(images=None, speech=None, translations: bool = False) -> list[str]:
    """The text the LM learns from: every QA pair and caption of a split's images and every
    transcript of its clips, prompt + target, in the words the fused model's prompts use; with
    ``translations`` (a run that trains a translate task) each caption's translation and each
    translated question with its answer too, so the tokenizer, trained on these lines, learns the
    translations' script."""
    lines = []
    if images is not None:
        translated = translations and "translation" in images.column_names
        for r in images.select_columns(["questions", "answers", "caption"] + (list(TRANSLATED_COLUMNS) if translated else [])):
            for q, a in zip(r["questions"], r["answers"], strict=True):
                lines.append(f"{text_prompt('vqa', q)} {a}")
            if translated:
                lines += [f"{text_prompt('translated_vqa', q, r['language'])} {a}"
                          for q, a in zip(r["translated_questions"], r["translated_answers"], strict=True) if q and a]
            if r["caption"]:
                lines.append(f"{text_prompt('caption')} {r['caption']}")
                if translated and r["translation"]:
                    lines.append(f"{text_prompt('translate', r['caption'], r['language'])} {r['translation']}")
    if speech is not None:
        lines += [f"{text_prompt('asr')} {t}" for t in speech["transcript"] if t]
    if not lines:
        raise ValueError("no text to train the language model on: the split has no captions, questions or transcripts")
    return lines


def train_tokenizer(lines: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE (GPT-2's scheme) trained with ``tokenizers`` on ``lines``."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(lines, vocab_size=vocab_size, min_frequency=2,
                            special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token=EOS, eos_token=EOS, pad_token=PAD,
        extra_special_tokens={"image_token": IMAGE, "audio_token": AUDIO},
    )
    tokenizer.padding_side = "left"  # generation pads on the left; training collators pad themselves
    return tokenizer


def token_id(tokenizer, token: str) -> int:
    found = tokenizer.convert_tokens_to_ids(token)
    if found is None or found == tokenizer.unk_token_id:
        raise ValueError(f"tokenizer has no {token!r} token; train it with mbmlab.models.text.train_tokenizer "
                         f"or load it with mbmlab.models.text.load_tokenizer, which add it")
    return found


def gpt2_config(tokenizer, dim: int, layers: int, heads: int, max_positions: int = 128) -> GPT2Config:
    """A small GPT-2 config. bos/eos/pad ids are set explicitly (transformers 5 needs them)."""
    return GPT2Config(
        vocab_size=len(tokenizer), n_positions=max_positions, n_embd=dim, n_layer=layers, n_head=heads,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def new_language_model(tokenizer, dim: int, layers: int, heads: int, seed: int) -> GPT2LMHeadModel:
    import torch

    torch.manual_seed(seed)
    return GPT2LMHeadModel(gpt2_config(tokenizer, dim, layers, heads))


def load_tokenizer(name_or_path: str):
    """A pretrained tokenizer by hub name (needs network) or local path, made ready for this
    workbench: a pad token (EOS when it has none), the ``<image>`` and ``<audio>`` tokens, left padding."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.eos_token is None:
        raise ValueError(f"tokenizer {name_or_path!r} has no end-of-text token; GPT-style training needs one")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    missing = [t for t in (IMAGE, AUDIO) if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
    tokenizer.padding_side = "left"
    return tokenizer


def load_language_model(name_or_path: str, tokenizer):
    """A pretrained causal LM by hub name (needs network) or local path (``gpt2``, a saved
    ``02_train`` model, …); its embeddings grow to the tokenizer's size if tokens were added."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(name_or_path)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


# the seed's demo: the same prompt decoded three ways
DECODING = {"greedy": dict(do_sample=False),
            "beam search (4 beams)": dict(do_sample=False, num_beams=4),
            "sampling (top-p 0.9, T 0.8)": dict(do_sample=True, top_p=0.9, temperature=0.8, top_k=0)}


def decode_each_way(lm, tokenizer, prompt: str, seed: int = 0, max_new_tokens: int = 8) -> dict[str, str]:
    """``prompt`` encoded, continued with each of ``DECODING`` (torch seeded before each), decoded."""
    import torch

    lm.eval()
    input_ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    out = {}
    for name, settings in DECODING.items():
        torch.manual_seed(seed)
        output = lm.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **settings)
        out[name] = tokenizer.decode(output[0], skip_special_tokens=True)
    return out
