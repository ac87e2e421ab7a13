"""02_train's text half: the tokenizer (byte-level BPE trained on the run's text, or a
pretrained one), the GPT-2 (new, or a pretrained causal LM), and its pretraining with the
``Trainer``. ``mbmlab.lab.launch_pretrain`` runs the same functions under ``accelerate launch``."""
from __future__ import annotations

from pathlib import Path

from ..models import text
from .trainer import LMCollator, TextLines, train, training_arguments


def tokenizer_for(lines: list[str], name: str = "", vocab_size: int = 400):
    """A pretrained tokenizer by ``name`` (with the media tokens added), else byte-level BPE
    trained on ``lines``."""
    return text.load_tokenizer(name) if name else text.train_tokenizer(lines, vocab_size)


def language_model(tokenizer, name: str = "", dim: int = 128, layers: int = 4, heads: int = 4, seed: int = 0):
    """A pretrained causal LM by ``name`` (its embeddings resized to ``tokenizer``), else a new GPT-2."""
    return text.load_language_model(name, tokenizer) if name else text.new_language_model(tokenizer, dim, layers,
                                                                                          heads, seed)


def pretrain(lm, tokenizer, lines: list[str], validation_lines: list[str], output_dir: Path, *, epochs: float,
             batch_size: int, learning_rate: float, seed: int, bf16: bool = False, resume: bool = False, **extra):
    """Next-token pretraining on ``lines``, evaluated on ``validation_lines`` each epoch, one
    checkpoint kept in ``output_dir``; returns the Trainer (``extra``: more TrainingArguments).
    Refuses lines longer than the LM's positions before training (a clear error, not an index error
    inside the embedding)."""
    train_lines, eval_lines = TextLines(lines, tokenizer), TextLines(validation_lines, tokenizer)
    limit = getattr(lm.config, "max_position_embeddings", None)
    longest = max((len(ids) for ids in train_lines.ids + eval_lines.ids), default=0)
    if limit and longest > limit:
        raise ValueError(f"the longest text line takes {longest} tokens but the language model has {limit} positions; "
                         "a larger vocab_size (more merges) shortens lines, or pretrain an LM with more positions")
    args = training_arguments(output_dir, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                              seed=seed, n_examples=len(lines), eval_strategy="epoch", save_strategy="epoch",
                              save_total_limit=1, bf16=bf16, **extra)
    return train(lm, args, train_lines, LMCollator(tokenizer.pad_token_id), eval_dataset=eval_lines, resume=resume)
