"""Training: datasets and collators for the LM and the fused model, run by the HF ``Trainer``."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from .models.text import CAPTION_PROMPT, vqa_prompt

IGNORE_INDEX = -100  # positions that carry no loss (image placeholders, prompts, padding)


class TextLines(Dataset):
    """Tokenised text lines, each ending in EOS, for language-model pretraining."""

    def __init__(self, lines: list[str], tokenizer):
        self.ids = [ids + [tokenizer.eos_token_id] for ids in tokenizer(lines)["input_ids"]]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i]}


def pad_right(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows])


def pad_batch(ids: list[list[int]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` and the matching ``attention_mask``."""
    return {"input_ids": pad_right(ids, pad_token_id), "attention_mask": pad_right([[1] * len(r) for r in ids], 0)}


class LMCollator:
    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict]) -> dict:
        batch = pad_batch([it["input_ids"] for it in items], self.pad_token_id)
        batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)
        return batch


def image_tasks(record: dict, tasks: tuple[str, ...] = ("vqa", "caption")) -> list[tuple[str, str]]:
    """(prompt, target) pairs for one image: each of its questions, and its caption if known."""
    pairs = []
    if "vqa" in tasks:
        pairs += [(vqa_prompt(q), f" {a}") for q, a in zip(record["questions"], record["answers"], strict=True)]
    if "caption" in tasks and record["caption"]:
        pairs.append((CAPTION_PROMPT, f" {record['caption']}"))
    return pairs


class ImageTasks(Dataset):
    """One item per image: its pixels' row and every (prompt, target) pair it supports.

    Batching whole images lets the model encode each image once for all its questions.
    """

    def __init__(self, dataset, pixel_values: torch.Tensor, tokenizer, tasks=("vqa", "caption")):
        self.pixel_values = pixel_values
        self.items = []
        for i, record in enumerate(dataset.select_columns(["questions", "answers", "caption"])):
            pairs = image_tasks(record, tasks)
            if not pairs:
                continue
            prompts = tokenizer([p for p, _ in pairs])["input_ids"]
            targets = tokenizer([t for _, t in pairs])["input_ids"]
            self.items.append((i, list(zip(prompts, targets))))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        image_row, pairs = self.items[i]
        return {"image_row": image_row, "pairs": pairs}


class FusionCollator:
    """Rows ``<image>×P prompt target EOS``; loss only on ``target EOS``."""

    def __init__(self, pixel_values: torch.Tensor, image_token_id: int, num_image_tokens: int,
                 eos_token_id: int, pad_token_id: int):
        self.pixel_values = pixel_values
        self.image = [image_token_id] * num_image_tokens
        self.eos, self.pad = eos_token_id, pad_token_id

    def __call__(self, items: list[dict]) -> dict:
        ids, labels, image_index = [], [], []
        for n, item in enumerate(items):
            for prompt, target in item["pairs"]:
                context = self.image + prompt
                ids.append(context + target + [self.eos])
                labels.append([IGNORE_INDEX] * len(context) + target + [self.eos])
                image_index.append(n)
        return {
            **pad_batch(ids, self.pad),
            "labels": pad_right(labels, IGNORE_INDEX),
            "pixel_values": self.pixel_values[[it["image_row"] for it in items]],
            "image_index": torch.tensor(image_index),
        }


def training_arguments(output_dir: Path, *, epochs: float, batch_size: int, learning_rate: float, seed: int,
                       n_examples: int | None = None, **extra) -> TrainingArguments:
    """CPU-friendly defaults: no checkpoints mid-run, cosine schedule, about 25 log lines a run."""
    steps = math.ceil((n_examples or 0) / batch_size * epochs)
    settings = dict(
        output_dir=str(output_dir), num_train_epochs=epochs, per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size, learning_rate=learning_rate, lr_scheduler_type="cosine",
        warmup_steps=0.05, weight_decay=0.01, seed=seed, data_seed=seed,
        logging_steps=max(1, steps // 25) if steps else 10,
        save_strategy="no", report_to="none", remove_unused_columns=False, dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
    )
    return TrainingArguments(**(settings | extra))


class StopAfter(TrainerCallback):
    """Stop training after ``step`` optimiser steps, saving a checkpoint there: an interruption
    on purpose (the resume test uses it; so can a user who wants to split a long run)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_save = True
            control.should_training_stop = True
        return control


def train(model, args: TrainingArguments, train_dataset, collator, eval_dataset=None, resume: bool = False,
          callbacks: list | None = None) -> Trainer:
    """Train with the HF ``Trainer``; with ``resume``, continue from the newest checkpoint in
    ``args.output_dir`` (model, optimiser, scheduler, RNG states and data position), if there is one."""
    logging.getLogger("transformers.trainer").setLevel(logging.WARNING)
    trainer = Trainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                      data_collator=collator, callbacks=callbacks)
    checkpoint = get_last_checkpoint(args.output_dir) if resume and Path(args.output_dir).is_dir() else None
    trainer.train(resume_from_checkpoint=checkpoint)
    return trainer


def loss_history(trainer: Trainer) -> pd.DataFrame:
    """The Trainer's logged training (and eval) losses per step."""
    rows = [r for r in trainer.state.log_history if "loss" in r or "eval_loss" in r]
    return pd.DataFrame(rows)


def plot_losses(history: pd.DataFrame, title: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    if "loss" in history:
        h = history.dropna(subset=["loss"])
        ax.plot(h["step"], h["loss"], label="train")
    if "eval_loss" in history:
        h = history.dropna(subset=["eval_loss"])
        ax.plot(h["step"], h["eval_loss"], "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy")
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    recall = [c for c in ("eval_recall@1", "eval_recall@5") if c in history]
    if recall:  # retrieval metrics on a second axis
        right = ax.twinx()
        for column, style in zip(recall, ("s--", "^:")):
            h = history.dropna(subset=[column])
            right.plot(h["step"], h[column], style, color="tab:green", label=f"validation {column[5:]}")
        right.set_ylabel("recall")
        right.set_ylim(0, 1)
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, fontsize=8)
    fig.tight_layout()
    return fig
