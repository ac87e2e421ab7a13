"""Fusion training (notebook 03_fuse): task units → batches → staged training with the ``Trainer``.

Staged like LLaVA: stage 1 trains only the connectors, with the encoders and the LM frozen (the
connectors learn to speak the LM's language); stage 2 tunes a chosen set of parts. Each stage
writes checkpoints under ``<output>/<stage>/`` and resumes from them.

The same training as a script for ``accelerate launch`` on many processes, GPUs or nodes:
``mbmlab.lab.launch_fuse``.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import Dataset

from . import trainer as T
from .reader import attend_reader
from ..data.tasks import Example, Unit, units
from ..models.processing_mbm import pad
from ..names import PARTS, TASKS

CONNECTORS = ("image_projector", "audio_projector", "fusion")  # stage 1: what joins, not what is joined


class TaskUnits(Dataset):
    """Tokenised training units of one split: each item is one image (or none) with all its rows,
    carrying its own input tensors, so a batch can never read another split's tensors."""

    def __init__(self, examples: list[Example], processor, pixel_values: torch.Tensor | None = None,
                 input_features: torch.Tensor | None = None, frame_mask: torch.Tensor | None = None,
                 transcripts: list[str] | None = None, vqa_per_image: int = 0, seed: int = 0):
        prompts = processor.prompt_ids([processor.prompt(e.task, e.question, e.language) for e in examples])
        targets = processor.target_ids([e.target for e in examples])
        tokenised = {id(e): (p, t) for e, p, t in zip(examples, prompts, targets, strict=True)}
        self.units: list[Unit] = units(examples)
        self.rows = [[(ex.task, ex.clip, *tokenised[id(ex)]) for ex in u.examples] for u in self.units]
        self.pixel_values, self.input_features = pixel_values, input_features
        # per clip: which frames hold it, and what it says (the audio tower's CTC targets)
        self.frame_mask, self.transcripts = frame_mask, transcripts
        self.n_examples = len(examples)
        # the padded width each unit asks for, in coarse buckets of 16 tokens: batches group units
        # of one kind (image units, speech units) and waste little on padding, while the order
        # within a bucket stays random. Exact lengths would sort by answer and caption length,
        # which follow the colour words, and a BatchNorm tower in training mode would then
        # normalise colour away batch by batch.
        self.lengths = [-(-max(len(p) + len(t) for _, _, p, t in rows) // 16) * 16 for rows in self.rows]
        # at most this many of an image's VQA rows per epoch (0: all), drawn afresh each epoch
        self.vqa_per_image, self.seed, self.epoch = vqa_per_image, seed, 0

    def __len__(self) -> int:
        return len(self.units)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next items are drawn for (the training sampler calls it, resumed runs included)."""
        self.epoch = epoch

    def rows_of(self, i: int) -> list[tuple]:
        """Unit ``i``'s rows this epoch: every row but VQA's, and ``vqa_per_image`` of its VQA rows
        drawn by (seed, epoch, unit) — the same draw in every process and on resume (a str seed
        is hashed by SHA-512, not by PYTHONHASHSEED)."""
        rows, cap = self.rows[i], self.vqa_per_image
        if not cap:  # the default: nothing drawn on the training's hot path
            return rows
        vqa = [k for k, row in enumerate(rows) if row[0] == "vqa"]
        if len(vqa) <= cap:
            return rows
        keep = set(random.Random(f"{self.seed}/{self.epoch}/{i}").sample(vqa, cap))
        return [row for k, row in enumerate(rows) if row[0] != "vqa" or k in keep]

    def rows_per_epoch(self) -> int:
        """Rows trained on per epoch, with the VQA cap (every epoch draws as many)."""
        return sum(len(self.rows_of(i)) for i in range(len(self)))

    def __getitem__(self, i: int) -> dict:
        image, rows = self.units[i].image, self.rows_of(i)
        clips = {clip for task, clip, _, _ in rows if clip is not None}
        return {"image": image, "rows": rows,
                "pixels": self.pixel_values[image] if image is not None else None,
                "clips": {clip: self.input_features[clip] for clip in sorted(clips)},
                "frame_masks": {clip: self.frame_mask[clip] for clip in sorted(clips)}
                if self.frame_mask is not None else {},
                "transcripts": {clip: self.transcripts[clip] for clip in sorted(clips)}
                if self.transcripts is not None else {}}


class FusionCollator:
    """Right-padded rows ``placeholders prompt target EOS`` with loss only on ``target EOS``; each
    image and clip of the batch is encoded once (``image_index`` / ``audio_index`` map rows to them).
    With ``ctc_characters``, the clips' frame masks and transcripts spelt as CTC targets come too
    (the audio tower's auxiliary loss)."""

    def __init__(self, processor, ctc_characters: str = ""):
        self.processor = processor
        self.ctc_characters = ctc_characters

    def __call__(self, items: list[dict]) -> dict:
        ids, labels, image_index, audio_index = [], [], [], []
        images: dict[int, torch.Tensor] = {}
        clips: dict[int, torch.Tensor] = {}
        for item in items:
            for task, clip, prompt_ids, target_ids in item["rows"]:
                row_ids, row_labels = self.processor.training_row(prompt_ids, target_ids)
                ids.append(row_ids)
                labels.append(row_labels)
                if "image" in TASKS[task]:
                    images.setdefault(item["image"], item["pixels"])
                    image_index.append(list(images).index(item["image"]))
                if "audio" in TASKS[task]:
                    clips.setdefault(clip, item["clips"][clip])
                    audio_index.append(list(clips).index(clip))
        batch = pad(ids, self.processor.tokenizer.pad_token_id, side="right", label_rows=labels)
        if images:
            batch["pixel_values"] = torch.stack(list(images.values()))
            batch["image_index"] = torch.tensor(image_index)
        if clips:
            batch["input_features"] = torch.stack(list(clips.values()))
            batch["audio_index"] = torch.tensor(audio_index)
            masks = {c: m for item in items for c, m in item.get("frame_masks", {}).items()}
            if masks:
                batch["frame_mask"] = torch.stack([masks[c] for c in clips])
            if self.ctc_characters:
                from .ctc import targets

                texts = {c: t for item in items for c, t in item.get("transcripts", {}).items()}
                batch["ctc_targets"], batch["ctc_target_lengths"] = targets([texts[c] for c in clips],
                                                                                self.ctc_characters)
        return batch


# ---------------------------------------------------------------- stages

@dataclass(frozen=True)
class Stage:
    name: str
    epochs: float
    learning_rate: float
    parts: tuple[str, ...]  # what this stage trains; the rest is frozen
    keep_reader: bool = False  # the attend connector's reading stays frozen inside image_projector


def stages(stage1_epochs: float, stage1_lr: float, epochs: float, lr: float, stage2_parts, *,
           keep_reader: bool = False) -> list[Stage]:
    """Stage 1 (connectors only) when ``stage1_epochs`` > 0, then stage 2 on ``stage2_parts``;
    ``keep_reader``: in both, the attend connector's reading (``reader_kept``) is not trained."""
    unknown = [p for p in stage2_parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown parts {unknown}; parts: {', '.join(PARTS)}")
    out = [Stage("stage1", stage1_epochs, stage1_lr, CONNECTORS, keep_reader)] if stage1_epochs > 0 else []
    return out + [Stage("stage2", epochs, lr, tuple(stage2_parts), keep_reader)]


def plan(values: dict, *, epochs: float | None = None, scale: float = 1.0, stage0: bool = True) -> list[Stage]:
    """03's stages from a run's parameters: stage 2 for ``epochs`` (default ``fuse_epochs``), both
    stages' epochs times ``scale``; ``stage0``: whether this training runs stage 0 first (04's
    baselines do not), so that its reading is kept (``reader_kept``)."""
    return stages(values["fuse_stage1_epochs"] * scale, values["fuse_stage1_learning_rate"],
                  (values["fuse_epochs"] if epochs is None else epochs) * scale, values["fuse_learning_rate"],
                  values["fuse_train_parts"], keep_reader=stage0 and reader_kept(values))


def reader_kept(values: dict) -> bool:
    """Whether stages 1–2 keep stage 0's reading (``fuse_stage0_keep_reader``; only when stage 0 runs)."""
    return values["fuse_stage0_epochs"] > 0 and values["fuse_stage0_keep_reader"]


def set_trainable(model, parts, keep_reader: bool = False) -> None:
    """Train ``parts`` and freeze the rest; frozen parts also stay in eval mode (no dropout, a
    frozen BatchNorm keeps its statistics), as ``model.frozen_parts`` tells ``model.train()``.
    ``keep_reader``: what stage 0 taught the image projector (``attend_reader``) stays frozen
    even where the projector trains."""
    model.requires_grad_(False)
    for name in parts:
        if (part := model.part(name)) is not None:
            part.requires_grad_(True)
    for reader in attend_reader(model) if keep_reader else []:
        reader.requires_grad_(False)  # no dropout or BatchNorm inside: train mode changes nothing
    model.frozen_parts = tuple(p for p in PARTS if p not in parts and model.part(p) is not None)
    model.train()


def parameter_counts(model, parts=None, keep_reader: bool = False) -> pd.DataFrame:
    """Parameters per part: total, and trainable under ``parts`` (and ``keep_reader``, as
    ``set_trainable`` takes them; None: as the model is now)."""
    kept = {id(p) for reader in (attend_reader(model) if keep_reader else []) for p in reader.parameters()}
    rows = []
    for name in PARTS:
        part = model.part(name)
        if part is None:
            continue
        params = list({id(p): p for p in part.parameters()}.values())
        total = sum(p.numel() for p in params)
        trainable = sum(p.numel() for p in params if id(p) not in kept) if parts is not None and name in parts else (
            0 if parts is not None else sum(p.numel() for p in params if p.requires_grad))
        rows.append({"part": name, "parameters": total, "trainable": trainable})
    frame = pd.DataFrame(rows)
    return pd.concat([frame, pd.DataFrame([{"part": "total", "parameters": frame["parameters"].sum(),
                                            "trainable": frame["trainable"].sum()}])], ignore_index=True)


SCORED_TASKS = ("vqa", "spoken_vqa", "asr")  # where a row's exact target is the right output (not captions)


@torch.no_grad()
def score_rows(model, units: TaskUnits, collator: FusionCollator, batch_size: int,
               tasks: tuple[str, ...] = SCORED_TASKS) -> pd.DataFrame:
    """Each row of ``tasks`` in ``units`` scored in one teacher-forced forward pass: ``exact`` when
    the argmax at every target position (the target's tokens and EOS) is the target token — by
    induction exactly when greedy decoding would produce the target — and ``prediction``, the
    greedy output's tokens up to and including its first wrong one (the whole target when exact).
    One row per scored example: task, image, question, answer, prediction, exact. The model's
    training mode is restored afterwards."""
    was_training = model.training
    model.eval()
    tokenizer = collator.processor.tokenizer
    records = []
    for start in range(0, len(units), batch_size):
        items, examples = [], []
        for i in range(start, min(start + batch_size, len(units))):
            item = units[i]
            keep = [k for k, row in enumerate(item["rows"]) if row[0] in tasks]
            if keep:
                items.append(item | {"rows": [item["rows"][k] for k in keep]})
                examples += [units.units[i].examples[k] for k in keep]
        if not items:
            continue
        batch = collator(items)
        labels = batch.pop("labels")[:, 1:]
        for name in ("ctc_targets", "ctc_target_lengths"):
            batch.pop(name, None)
        predicted = model(**batch).logits[:, :-1].argmax(-1)
        scored = labels != T.IGNORE_INDEX
        wrong = (predicted != labels) & scored
        for ex, row_pred, row_scored, row_wrong in zip(examples, predicted, scored, wrong, strict=True):
            positions = row_scored.nonzero().flatten()
            misses = row_wrong[positions].nonzero().flatten()
            upto = positions if not len(misses) else positions[: int(misses[0]) + 1]
            records.append({"task": ex.task, "image": ex.image, "question": ex.question, "answer": ex.target,
                            "prediction": tokenizer.decode(row_pred[upto], skip_special_tokens=True).strip(),
                            "exact": not len(misses)})
    model.train(was_training)
    return pd.DataFrame(records, columns=["task", "image", "question", "answer", "prediction", "exact"])


class KeepBestEpoch(T.TrainerCallback):
    """After each epoch: the validation rows scored (``score_rows``), the score — the mean over the
    scored tasks of each one's exact share — and each task's share appended to ``folder/epochs.csv``;
    a better score than every earlier epoch's saves the model's weights to ``folder/best.safetensors``
    (and ``best.json``). ``restore`` loads them after training. The files persist, so a resumed
    stage still knows the epochs scored before its interruption; a fresh (not resumed) stage
    starts them anew. Choosing the epoch on validation, never on test."""

    def __init__(self, eval_set: TaskUnits, collator: FusionCollator, batch_size: int, folder: Path, resume: bool):
        self.eval_set, self.collator, self.batch_size, self.folder = eval_set, collator, batch_size, Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if not resume:
            for name in ("epochs.csv", "best.json", "best.safetensors"):
                (self.folder / name).unlink(missing_ok=True)

    @property
    def epochs(self) -> pd.DataFrame:
        path = self.folder / "epochs.csv"
        return pd.read_csv(path) if path.exists() else pd.DataFrame()

    @property
    def best(self) -> dict | None:
        path = self.folder / "best.json"
        return json.loads(path.read_text()) if path.exists() else None

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        from safetensors.torch import save_file

        started = time.perf_counter()
        rows = score_rows(model, self.eval_set, self.collator, self.batch_size)
        if rows.empty:
            return control
        from ..metrics.vqa import blind_questions

        shares = rows.groupby("task")["exact"].mean()
        record = {"epoch": round(float(state.epoch), 4), "step": state.global_step, "score": float(shares.mean()),
                  **{f"{task}/exact": float(v) for task, v in shares.items()}}
        if "vqa" in shares:  # question texts given one answer for every image (mbmlab.metrics.vqa.blind_questions)
            typed = rows[rows["task"] == "vqa"].rename(columns={"image": "image_id"})
            record["vqa/blind_texts"] = len(blind_questions(typed))
        record["seconds"] = round(time.perf_counter() - started, 2)  # what scoring the epoch cost
        scored = pd.concat([self.epochs, pd.DataFrame([record])], ignore_index=True)
        scored.drop_duplicates("epoch", keep="last").to_csv(self.folder / "epochs.csv", index=False)  # an epoch redone on resume
        best = self.best
        if best is None or record["score"] > best["score"]:
            save_file({k: v.detach().contiguous().clone() for k, v in model.state_dict().items()},
                      self.folder / "best.safetensors")
            (self.folder / "best.json").write_text(json.dumps(record, indent=1))
        return control

    def restore(self, model) -> dict | None:
        """Load the best epoch's weights into ``model`` (shared tensors as the model ties them);
        returns the best epoch's record, None when no epoch was scored."""
        from safetensors.torch import load_file

        best = self.best
        if best is not None:
            state = load_file(self.folder / "best.safetensors")
            missing, unexpected = model.load_state_dict(state, strict=False)
            if unexpected or any(k not in model.state_dict() for k in missing):
                raise RuntimeError(f"best epoch weights do not fit the model: {unexpected or missing}")
        return best


@dataclass
class EpochChoice:
    """What ``KeepBestEpoch`` chose in a stage: the kept epoch's record (epoch, step, score, each
    task's validation exact share, ``vqa/blind_texts``) and every scored epoch's."""
    stage: str
    kept: dict
    scored: pd.DataFrame


class TrainedStages(dict):
    """``train_stages``' result: ``{stage name: Trainer}`` in training order, and ``choice``, the
    last stage's ``EpochChoice`` (None when no epoch was scored or the stage did not finish)."""
    choice: EpochChoice | None = None


def train_stages(model, train_set: TaskUnits, collator: FusionCollator, plan: list[Stage], output_dir: Path, *,
                 batch_size: int, seed: int, bf16: bool = False, resume: bool = False, eval_set: TaskUnits | None = None,
                 callbacks: dict | None = None, keep_best: bool = False, **extra) -> TrainedStages:
    """Run the stages in order; returns ``{stage name: Trainer}`` (a ``TrainedStages``). ``callbacks[stage]`` (a list)
    joins that stage's Trainer (the resume test interrupts a stage this way). ``keep_best`` (with
    ``eval_set``): the last stage keeps its best epoch on the validation rows (``KeepBestEpoch``;
    the result's ``choice`` holds its record, its scores also in ``<output_dir>/<stage>/selection/``)."""
    trainers = TrainedStages()
    for stage in plan:
        set_trainable(model, stage.parts, stage.keep_reader)
        settings = dict(save_strategy="epoch", save_total_limit=1, bf16=bf16) | extra
        args = T.training_arguments(Path(output_dir) / stage.name, epochs=stage.epochs, batch_size=batch_size,
                                    learning_rate=stage.learning_rate, seed=seed, n_examples=len(train_set),
                                    **settings)
        chooser = KeepBestEpoch(eval_set, collator, 4 * batch_size, Path(output_dir) / stage.name / "selection", resume) \
            if keep_best and eval_set is not None and stage is plan[-1] else None
        trainers[stage.name] = T.train(model, args, train_set, collator, eval_dataset=eval_set, resume=resume,
                                       callbacks=[*(callbacks or {}).get(stage.name, []), *([chooser] if chooser else [])])
        if chooser is not None and trainers[stage.name].state.global_step >= trainers[stage.name].state.max_steps:
            kept = chooser.restore(model)
            trainers.choice = None if kept is None else EpochChoice(stage.name, kept, chooser.epochs)
        if eval_set is not None:  # the validation loss once per stage (each pass costs seconds on a CPU)
            trainers[stage.name].evaluate()
        if trainers[stage.name].control.should_training_stop and trainers[stage.name].state.global_step < \
                trainers[stage.name].state.max_steps:
            break  # interrupted on purpose (StopAfter): later stages wait for the resume
    set_trainable(model, PARTS)
    model.eval()
    return trainers


def record_epoch_choice(trainers: TrainedStages, run: Path) -> str:
    """After ``train_stages(keep_best=True)``: the scored epochs to ``run/fuse_epochs.csv``, the kept
    one's validation shares to ``metrics.json`` (``fuse/kept_epoch``, ``fuse/validation/<task>/exact``),
    and a sentence saying which epoch was kept and why."""
    from .. import artifacts

    choice = trainers.choice
    if choice is None or choice.scored.empty:
        return "stage 2 kept its last epoch (no epoch scored on validation: fuse_keep_best_epoch=false or no rows to score)"
    kept, scored = choice.kept, choice.scored
    scored.to_csv(Path(run) / "fuse_epochs.csv", index=False)
    shares = {k: v for k, v in kept.items() if k.endswith(("/exact", "/blind_texts"))}
    artifacts.log_metrics(run, {"fuse/kept_epoch": kept["epoch"], "fuse/epochs_scored": float(len(scored)),
                                **{f"fuse/validation/{k}": v for k, v in shares.items()}})
    table = scored.set_index("epoch").drop(columns=["step", "seconds"], errors="ignore").to_string(
        float_format=lambda v: f"{v:.4f}")
    last_epoch = scored["epoch"].iloc[-1]
    why = "the last" if kept["epoch"] == last_epoch else f"not the last ({last_epoch:g}): its score was higher"
    blind = kept.get("vqa/blind_texts", 0)
    warning = (f"\nwarning: at the kept epoch {blind:g} validation question texts get one answer for every image "
               "although their answers vary (answered blind; 04 lists them on test)") if blind else ""
    return (f"validation exact share after each stage-2 epoch (teacher-forced; score = the tasks' mean):\n{table}\n"
            f"kept: epoch {kept['epoch']:g}, {why}{warning}")


def read_stage(prepared: "Prepared", values: dict, train: list[Example] | None = None,
               checkpoints: Path | None = None):
    """03's stage 0 (``mbmlab.training.reader``) when ``fuse_stage0_epochs`` asks for it: the image
    tower and the attend connector taught to read images for the questions; None when skipped.
    ``train``: the training rows (default: the prepared training split's; 07's oversampling
    mitigation repeats some). ``checkpoints``: the stages' checkpoint folder; with ``resume`` and
    a checkpoint there, stage 0 is skipped (the checkpoint holds what it taught, and resuming
    restores it); without one, a resume runs stage 0 again."""
    if values.get("fuse_stage0_epochs", 0) <= 0:
        return None
    if values.get("resume") and checkpoints is not None and any(Path(checkpoints).glob("*/checkpoint-*")):
        return None
    from .reader import pretrain_reader

    return pretrain_reader(prepared.model, prepared.processor, prepared.examples["train"] if train is None else train,
                           prepared.pixel_values["train"], prepared.examples["validation"],
                           prepared.pixel_values["validation"], seed=values["seed"],
                           max_epochs=values["fuse_stage0_epochs"], patience=values["fuse_stage0_patience"],
                           restarts=values["fuse_stage0_restarts"], mirror=values["fuse_stage0_mirror"],
                           balance_types=values.get("fuse_stage0_balance_types", False))


def train_quietly(model, train_set, collator, plan: list[Stage], output_dir: Path, values: dict,
                  eval_set: TaskUnits | None = None) -> TrainedStages:
    """``train_stages`` with 03_fuse's batch, seed and bf16 from ``values``, no checkpoints, no
    logging, no progress bars: the extra trainings that 04's baselines and 07's bias study run.
    With ``eval_set``, the last stage keeps its best epoch as 03 does (``fuse_keep_best_epoch``)."""
    return train_stages(model, train_set, collator, plan, output_dir, batch_size=values["fuse_batch_images"],
                        seed=values["seed"], bf16=values["bf16"], save_strategy="no", logging_strategy="no",
                        disable_tqdm=True, eval_set=eval_set,
                        keep_best=eval_set is not None and values.get("fuse_keep_best_epoch", False))


def history(trainers: dict) -> pd.DataFrame:
    """The stages' logged losses on one step axis (stage 2's steps continue stage 1's)."""
    frames, offset = [], 0
    for name, trainer in trainers.items():
        h = T.loss_history(trainer)
        if len(h):
            h = h.assign(stage=name, step=h["step"] + offset)
            frames.append(h)
        offset += trainer.state.global_step
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# ---------------------------------------------------------------- from a run folder to a model and data

@dataclass
class Prepared:
    model: object
    processor: object
    tasks: tuple[str, ...]  # the asked-for tasks that the data supports
    skipped: dict[str, str]  # asked-for tasks without data → why
    examples: dict[str, list[Example]]  # per split
    sets: dict[str, TaskUnits]  # per split
    collator: FusionCollator
    pixel_values: dict[str, torch.Tensor]
    input_features: dict[str, torch.Tensor]

    @property
    def train_set(self) -> TaskUnits:
        return self.sets["train"]


def split_inputs(processed, processor, splits=("train", "validation", "test"), modalities=("image", "audio"),
                 with_masks: bool = False):
    """Pixel tensors of the image splits and log-mel features of the speech splits asked for
    (with ``with_masks``, also the frame masks of the speech splits)."""
    from ..models.audio import log_mel
    from ..models.vision import pixel_values

    pixels = {s: pixel_values(processed.images[s], processor.image_processor) for s in splits} \
        if processed.images is not None and "image" in modalities else {}
    mel = {s: log_mel(processed.speech[s], processor.feature_extractor) for s in splits} \
        if processed.speech is not None and "audio" in modalities else {}
    features = {s: m[0] for s, m in mel.items()}
    return (pixels, features, {s: m[1] for s, m in mel.items()}) if with_masks else (pixels, features)


def check_lengths(sets: dict[str, TaskUnits], text_config, values: dict) -> None:
    """Refuse rows longer than the language model's positions, before any training, saying what
    to change (media placed in the sequence are what make rows long)."""
    limit = getattr(text_config, "max_position_embeddings", None)
    if not limit:
        return
    longest = max((len(p) + len(t) for s in sets.values() for rows in s.rows for _, _, p, t in rows), default=0)
    if longest > limit:
        raise ValueError(
            f"the longest {values['fusion']} training row takes {longest} positions but the language model has "
            f"{limit}; place fewer media tokens (early fusion: a larger early_patch_size or early_audio_frames; "
            f"prefix: a larger audio_frame_pool or pixel_shuffle, or the pooled connector) or pretrain an LM with "
            f"more positions")


def cross_attention_layers(count: int, every: int) -> list[int]:
    """Flamingo's spacing: a gated block before every ``every``-th decoder layer, counted so that
    the last layer always has one (every=1: all layers; every=2 of 4: layers 1 and 3)."""
    return [i for i in range(count) if (count - 1 - i) % every == 0]


def prepare(run: Path, values: dict, splits=("train", "validation"), processed=None) -> Prepared:
    """The fused model (from 02_train's LM and, with ``*_init="aligned"``, its aligned encoders),
    its processor and the task data of ``splits``, as 03_fuse's parameters ask. ``processed``:
    other data than the run's own (the bias study trains on scenes at several strengths)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..data.collect import load_processed
    from ..data.tasks import task_examples
    from ..models import MbmConfig, MbmForConditionalGeneration, MbmProcessor
    from ..models import audio as A
    from ..models import text
    from ..models import vision as V
    from ..models.fusion import FUSIONS
    from ..artifacts import load_json

    run = Path(run)
    if processed is None:
        processed = load_processed(load_json(run, "dataset.json")["path"])
    from ..artifacts import check_run_models

    check_run_models(run, "02_train")
    tokenizer = AutoTokenizer.from_pretrained(run / "lm")
    lm = AutoModelForCausalLM.from_pretrained(run / "lm")
    wanted = tuple(values["tasks"])
    have = {"image": processed.images is not None and (run / "image_encoder").is_dir(),
            "audio": processed.speech is not None and (run / "audio_encoder").is_dir()}
    skipped = {t: f"no {', '.join(m for m in TASKS[t] if not have[m])} data in this run"
               for t in wanted if not all(have[m] for m in TASKS[t])}
    tasks = tuple(t for t in wanted if t not in skipped)
    needed = {m for t in tasks for m in TASKS[t]}
    if not tasks:
        raise ValueError(f"none of the tasks {list(wanted)} has data in this run ({'; '.join(skipped.values())})")

    vision_tower = audio_tower = None
    image_processor, extractor = V.image_processor(64), A.feature_extractor(1)  # stand-ins when unused
    image_size = 64
    if "image" in needed:
        vision_tower, image_processor = V.load_image_encoder(str(run / "image_encoder" / "encoder"))
        image_size = V.input_size(vision_tower, image_processor)
    ctc_head = None
    if "audio" in needed:
        audio_tower, extractor = A.load_audio_encoder(str(run / "audio_encoder" / "encoder"))
        ctc_head = ctc_head_for(run, values)
    config = MbmConfig(
        text_config=lm.config, vision_config=vision_tower.config if vision_tower is not None else None,
        audio_config=audio_tower.config if audio_tower is not None else None, fusion=values["fusion"],
        image_size=image_size, image_connector=values["image_connector"],
        image_prefix_length=values["image_prefix_length"], image_projector=values["projector"],
        attend_dim=values["attend_dim"], attend_mix=values["attend_mix"],
        resampler_queries=values["resampler_queries"], early_patch_size=values["early_patch_size"],
        early_audio_frames=values["early_audio_frames"],
        cross_attention_layers=cross_attention_layers(lm.config.num_hidden_layers, values["cross_attention_every"]),
        image_pixel_shuffle=values["pixel_shuffle"],
        audio_projector=values["projector"], audio_frame_pool=values["audio_frame_pool"],
        image_token_id=text.token_id(tokenizer, text.IMAGE), audio_token_id=text.token_id(tokenizer, text.AUDIO),
        ctc_characters=ctc_head.characters if ctc_head is not None else "",
        ctc_weight=values["ctc_weight"] if ctc_head is not None else 0.0, spec_augment=values["spec_augment"],
        vtlp_warp=values["vtlp_warp"])
    torch.manual_seed(values["seed"])
    towers = FUSIONS[values["fusion"]].encoders  # early fusion has none: raw patches and frames
    aligned_audio = towers and values["audio_init"] == "aligned"
    model = MbmForConditionalGeneration.from_parts(
        config, language_model=lm,
        vision_tower=vision_tower if towers and values["vision_init"] == "aligned" else None,
        audio_tower=audio_tower if aligned_audio else None, ctc_head=ctc_head if aligned_audio else None)
    processor = MbmProcessor(image_processor, extractor, tokenizer, config.image_seq_length or 0,
                             config.audio_seq_length or 0)
    pixels, features, masks = split_inputs(processed, processor, splits, needed, with_masks=True)
    examples, sets = {}, {}
    for split in splits:
        examples[split] = task_examples(processed.images[split] if "image" in needed else None,
                                        processed.speech[split] if "audio" in needed else None, tasks,
                                        values["translate_mask"], values["translate_mask_words"])
    trained = {e.task for e in examples[splits[0]]}
    skipped |= {t: f"no {splits[0]} examples (the data has none of its targets)" for t in tasks if t not in trained}
    tasks = tuple(t for t in tasks if t in trained)
    model.config.translate_languages = sorted({e.language for e in examples[splits[0]]
                                               if e.task in ("translate", "speech_translate")}) or None
    model.config.answer_languages = sorted({e.language for e in examples[splits[0]]
                                            if e.task == "translated_vqa"}) or None
    if not tasks:
        raise ValueError(f"none of the tasks {list(wanted)} has {splits[0]} examples in this run")
    for split in splits:
        sets[split] = TaskUnits(examples[split], processor, pixels.get(split), features.get(split), masks.get(split),
                                processed.speech[split]["transcript"] if "audio" in needed else None,
                                vqa_per_image(values) if split == "train" else 0, values["seed"])
    check_lengths(sets, lm.config, values)
    collator = FusionCollator(processor, config.ctc_characters if config.ctc_weight else "")
    return Prepared(model, processor, tasks, skipped, examples, sets, collator, pixels, features)


def vqa_per_image(values: dict) -> int:
    """The VQA cap of 03's training; a run made before the parameter existed trained on every question."""
    return values.get("fuse_vqa_per_image", 0)


def ctc_head_for(run: Path, values: dict):
    """02's CTC head of the audio tower (``run/audio_encoder/ctc_head.safetensors``) when 03 trains
    with ``ctc_weight`` > 0 and a tower (not early fusion); else None, and a line says why."""
    from ..models.fusion import FUSIONS
    from .ctc import load_head

    path = Path(run) / "audio_encoder" / "ctc_head.safetensors"
    if not values["ctc_weight"] or not FUSIONS[values["fusion"]].encoders:
        return None
    if not path.exists():
        print(f"ctc_weight={values['ctc_weight']} but 02 trained no CTC head (audio_ctc_epochs=0): no CTC loss")
        return None
    return load_head(path)
