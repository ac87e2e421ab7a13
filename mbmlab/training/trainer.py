"""Training with the HF ``Trainer``: arguments, checkpoints and resume, loss curves; the LM's
text dataset and collator. (The fused model's task data and stages are in ``mbmlab.training.fused``.)"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from ..models.processing_mbm import IGNORE_INDEX, pad


class TextLines(Dataset):
    """Tokenised text lines, each ending in EOS, for language-model pretraining."""

    def __init__(self, lines: list[str], tokenizer):
        self.ids = [ids + [tokenizer.eos_token_id] for ids in tokenizer(lines)["input_ids"]]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i]}


class LMCollator:
    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict]) -> dict:
        batch = pad([it["input_ids"] for it in items], self.pad_token_id, side="right")
        batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)
        return batch


def lm_compute(lm, data: TextLines, epochs: float) -> dict[str, float]:
    """Training compute of a language model: C = 6·(N + H)·D, after Kaplan et al. 2020 (§2.1,
    6 FLOPs per parameter per token: forward 2, backward 4), N the non-embedding parameters (token
    and position embeddings are lookups, left out), H = width × vocabulary the multiply-adds of the
    output head per token — a matmul on every token even when it is tied to the input embedding
    (Kaplan et al. leave it out; at width 16 and 300 tokens it is about as large as N, so leaving it
    out undercounts C about 2×), D the tokens trained on (every token of every line, times the epochs)."""
    embeddings = {id(p) for m in lm.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    n = sum(p.numel() for p in {id(p): p for p in lm.parameters()}.values() if id(p) not in embeddings)
    head = lm.get_output_embeddings().weight.numel() if lm.get_output_embeddings() is not None else 0
    d = sum(len(ids) for ids in data.ids) * epochs
    return {"lm/non_embedding_parameters": float(n), "lm/head_parameters": float(head), "lm/train_tokens": float(d),
            "lm/train_flops": 6.0 * (n + head) * d}


def _reporters() -> list[str] | str:
    """TensorBoard event files beside each training's checkpoints (``<output_dir>/runs/…``, in the
    run folder) where the tensorboard package is installed; the curves also reach MLflow from the
    notebooks' history CSVs (mbmlab.lab.tracking)."""
    import importlib.util

    return ["tensorboard"] if importlib.util.find_spec("tensorboard") is not None else "none"


def training_arguments(output_dir: Path, *, epochs: float, batch_size: int, learning_rate: float, seed: int,
                       n_examples: int | None = None, **extra) -> TrainingArguments:
    """CPU-friendly defaults: no checkpoints mid-run, cosine schedule, about 25 log lines a run."""
    steps = math.ceil((n_examples or 0) / batch_size * epochs)
    settings = dict(
        output_dir=str(output_dir), num_train_epochs=epochs, per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size, learning_rate=learning_rate, lr_scheduler_type="cosine",
        warmup_steps=0.05, weight_decay=0.01, seed=seed, data_seed=seed,
        logging_steps=max(1, steps // 25) if steps else 10,
        save_strategy="no", report_to=_reporters(), remove_unused_columns=False, dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
    )
    settings |= extra
    if "bf16" in settings:  # "auto"/"true"/"false" decided here when no notebook did it before
        from ..hardware import resolve_bf16

        settings["bf16"] = resolve_bf16(settings["bf16"])
    return TrainingArguments(**settings)


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


class LearningRateGivenNow(TrainerCallback):
    """On a resumed training, the learning rate of the arguments given now, not the checkpoint's.

    HF's Trainer restores the optimiser's and the scheduler's state from the checkpoint, base
    learning rates included, so a learning rate lowered before ``mbmlab run --resume`` (after a
    non-finite loss, say) would be silently ignored. At the start of the resumed training this sets
    the scheduler's base rates and each parameter group's ``initial_lr`` to ``args.learning_rate``
    and the current rate to what the schedule gives at the restored step. Nothing changes when the
    rate is the checkpoint's (the bit-identical resume stays bit-identical)."""

    def on_train_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        scheduler = getattr(lr_scheduler, "scheduler", lr_scheduler)  # accelerate wraps it
        if not state.global_step or scheduler is None or not hasattr(scheduler, "lr_lambdas"):
            return control
        if all(base == args.learning_rate for base in scheduler.base_lrs):
            return control
        scheduler.base_lrs = [args.learning_rate] * len(scheduler.base_lrs)
        for group, factor in zip(optimizer.param_groups, scheduler.lr_lambdas):
            group["initial_lr"] = args.learning_rate
            group["lr"] = args.learning_rate * factor(scheduler.last_epoch)
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
        return control


class LengthGroupedEpochSampler(torch.utils.data.Sampler):
    """transformers' length grouping (shuffle, then sort by length within mega-batches of 50
    batches) with the shuffle seeded by (seed, epoch): the order of an epoch does not depend on
    the global RNG, so a run resumed mid-epoch sees the same batches as an uninterrupted one."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, dataset=None):
        self.lengths, self.batch_size, self.seed, self.epoch = list(lengths), batch_size, seed, 0
        # told the epoch too, when it draws per epoch (fused.TaskUnits' VQA cap): accelerate tells the
        # dataset itself only when its sampler is not wrapped for several processes (DataLoaderShard.set_epoch)
        self.dataset = dataset

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        from transformers.trainer_pt_utils import get_length_grouped_indices

        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class NonFiniteLoss(FloatingPointError):
    """A training step's loss was NaN or infinite: training stopped before the optimiser step."""


def describe_batch(inputs: dict) -> str:
    """Each tensor of a batch with its shape, and how many non-finite values a float one holds."""
    parts = []
    for key, value in inputs.items():
        if isinstance(value, torch.Tensor):
            bad = int((~torch.isfinite(value)).sum()) if value.is_floating_point() else 0
            parts.append(f"{key} {tuple(value.shape)}" + (f" with {bad} non-finite values" if bad else ""))
    return ", ".join(parts)


class LengthAwareTrainer(Trainer):
    """A ``Trainer`` that batches items of similar length together when the training dataset
    knows its items' lengths (a ``lengths`` attribute), as ``group_by_length`` does for datasets
    with an ``input_ids`` column: a few long rows (speech) no longer pad a whole batch of short ones.
    A non-finite loss stops training at once (``NonFiniteLoss``, before the optimiser step), naming
    the stage (the output folder), the step, the batch within the epoch and what the batch held."""

    # FLOPs are counted on about this many passes of a training, spread evenly (FlopCounterMode
    # dispatches every op through Python: a counted pass of 03's default fusion took 280 ms against
    # 155 ms uncounted, so counting every 10th pass cost ~8% of each training, ~12% of 02's CTC)
    FLOP_SAMPLES = 20
    FLOP_SAMPLE_GAP = 10  # …and never more often than every 10th pass (short trainings)

    def flop_sample_every(self) -> int:
        return max(self.FLOP_SAMPLE_GAP, int(self.state.max_steps or 0) // self.FLOP_SAMPLES)

    def training_step(self, model, inputs, num_items_in_batch=None):
        counts = self.__dict__.setdefault("_throughput", {"calls": 0, "tokens": 0, "items": 0, "flops": []})
        counts["calls"] += 1
        mask = inputs.get("attention_mask") if isinstance(inputs, dict) else None
        counts["tokens"] += mask.sum().detach() if isinstance(mask, torch.Tensor) else 0  # no device sync a step
        first = next((v for v in inputs.values() if isinstance(v, torch.Tensor)), None) if isinstance(inputs, dict) else None
        counts["items"] += int(first.shape[0]) if first is not None and first.dim() else 0
        every = counts.setdefault("every", self.flop_sample_every())
        if (counts["calls"] - 1) % every == every // 2:  # mid-interval: not the first, longest batch
            from torch.utils.flop_counter import FlopCounterMode

            with FlopCounterMode(display=False) as counter:
                loss = super().training_step(model, inputs, num_items_in_batch)
            counts["flops"].append(counter.get_total_flops())
        else:
            loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss).all():
            steps = max(1, len(self.get_train_dataloader()) // self.args.gradient_accumulation_steps)
            step = self.state.global_step + 1
            raise NonFiniteLoss(
                f"non-finite training loss ({loss.item()}) in stage {Path(self.args.output_dir).name!r} at optimiser "
                f"step {step} (epoch {int(self.state.epoch or 0) + 1}, batch {(step - 1) % steps + 1} of {steps}); "
                f"the batch: {describe_batch(inputs)}. Lower the learning rate or check the inputs, then "
                "`mbmlab run --resume <run> --set <parameter>=<value>` (the training continues from its "
                "newest checkpoint with the value given)")
        return loss

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        lengths = getattr(dataset, "lengths", None)
        if lengths is None:
            return super()._get_train_sampler(train_dataset)
        return LengthGroupedEpochSampler(lengths, self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                         self.args.data_seed if self.args.data_seed is not None else self.args.seed,
                                         dataset)


def train(model, args: TrainingArguments, train_dataset, collator, eval_dataset=None, resume: bool = False,
          callbacks: list | None = None) -> Trainer:
    """Train with the HF ``Trainer``; with ``resume``, continue from the newest checkpoint in
    ``args.output_dir`` (model, optimiser, scheduler, RNG states and data position), if there is one."""
    logging.getLogger("transformers.trainer").setLevel(logging.WARNING)
    trainer = LengthAwareTrainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                                 data_collator=collator, callbacks=[*(callbacks or []), LearningRateGivenNow()])
    checkpoint = get_last_checkpoint(args.output_dir) if resume and Path(args.output_dir).is_dir() else None
    if checkpoint is not None:
        check_checkpoint(Path(checkpoint))
    output = trainer.train(resume_from_checkpoint=checkpoint)
    record_throughput(trainer, output.metrics.get("train_runtime"))
    fp32_forward(model)
    return trainer


def fp32_forward(model) -> None:
    """Undo accelerate's bf16 wrapper: a bf16 training leaves ``model.forward`` an instance attribute
    running under autocast, which ``save_pretrained`` does not carry — the trained model would then
    answer differently from its saved copy (measured: logits 0.13 apart on an AVX512-BF16 machine,
    where ``bf16=auto`` trains in bf16). After training the model runs in fp32, as reloaded."""
    from accelerate.utils import extract_model_from_parallel

    extract_model_from_parallel(model, keep_fp32_wrapper=False)
    model.__dict__.pop("forward", None)  # the class's own forward again


def check_checkpoint(folder: Path) -> Path:
    """Refuse a damaged Trainer checkpoint before resuming from it (``CorruptArtifactError`` naming
    the file): its JSON and safetensors files as ``artifacts.check_model_folder`` checks them, and
    its torch pickles (optimizer.pt, scheduler.pt, rng_state.pth — zip archives) must be whole."""
    import zipfile

    from ..artifacts import CorruptArtifactError, check_model_folder

    advice = f"the training without resuming (or delete {folder} to resume from an earlier checkpoint)"
    check_model_folder(folder, advice)
    for path in sorted([*folder.glob("*.pt"), *folder.glob("*.pth")]):
        try:
            with zipfile.ZipFile(path) as archive:
                damaged = archive.testzip()
        except (zipfile.BadZipFile, OSError) as err:
            damaged = str(err)
        if damaged:
            raise CorruptArtifactError(f"{path} cannot be read ({damaged}): it is truncated or corrupt; rerun {advice}")
    return folder


def record_throughput(trainer: Trainer, seconds: float | None) -> dict | None:
    """What one training did per second, written to ``<output_dir>/throughput.json`` (the run's
    report gathers these): seconds, forward-backward passes, items and tokens (attention-mask
    ones) per second, and model FLOPs — counted exactly (``torch.utils.flop_counter``: matmuls and
    convolutions, forward and backward) on about ``FLOP_SAMPLES`` passes spread over the training
    and scaled to all —
    per second. MFU = those FLOP/s ÷ the machine's measured peak (Chowdhery et al. 2022,
    "PaLM", appendix B), computed where the peak is known (the report)."""
    counts = getattr(trainer, "_throughput", None)
    if not counts or not counts["calls"] or not seconds or not trainer.is_world_process_zero():
        return None
    flops = sum(counts["flops"]) / len(counts["flops"]) * counts["calls"] if counts["flops"] else 0.0
    tokens = float(counts["tokens"])
    record = {"training": Path(trainer.args.output_dir).name, "seconds": seconds, "passes": counts["calls"],
              "items_per_second": counts["items"] / seconds, "tokens_per_second": tokens / seconds,
              "flops": flops, "flops_per_second": flops / seconds, "flops_sampled_passes": len(counts["flops"]),
              "bf16": bool(trainer.args.bf16)}
    out = Path(trainer.args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(record, indent=1))
    return record


def loss_history(trainer: Trainer) -> pd.DataFrame:
    """The Trainer's logged training (and eval) losses per step."""
    rows = [r for r in trainer.state.log_history if "loss" in r or "eval_loss" in r]
    return pd.DataFrame(rows)


def plot_losses(history: pd.DataFrame, title: str, ylabel: str = "cross-entropy"):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    if "loss" in history:
        h = history.dropna(subset=["loss"])
        ax.plot(h["step"], h["loss"], label="train")
    if "eval_loss" in history:
        h = history.dropna(subset=["eval_loss"])
        ax.plot(h["step"], h["eval_loss"], "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    scores = [c for c in ("eval_recall@1", "eval_recall@5", "eval_wer") if c in history]
    if scores:  # validation retrieval recall (alignment) or WER (CTC) on a second axis
        right = ax.twinx()
        for column, style in zip(scores, ("s--", "^:", "s--")):
            h = history.dropna(subset=[column])
            right.plot(h["step"], h[column], style, color="tab:green", label=f"validation {column[5:]}")
        right.set_ylabel("WER" if scores == ["eval_wer"] else "recall")
        right.set_ylim(0, 1)
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, fontsize=8)
    fig.tight_layout()
    return fig
