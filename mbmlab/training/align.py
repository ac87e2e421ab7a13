"""CLIP-style alignment of an image or audio encoder with text (Radford et al., 2021, "Learning
Transferable Visual Models From Natural Language Supervision", fig. 3): both sides are projected
into one space, L2-normalised, compared by a dot product scaled by a learned temperature, and
trained with the symmetric InfoNCE loss.

Our captions repeat ("a blue circle" describes many images), so a batch can hold several pairs
with the same text. Treating those as negatives would punish correct matches; the target of each
row is therefore spread evenly over every column with the same text (the multi-positive form of
Khosla et al., 2020, "Supervised Contrastive Learning", eq. 2 in its cross-entropy reading). With
distinct texts this is exactly CLIP's loss.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from transformers import TrainerCallback

from ..models.connectors import pooled_image
from ..models.processing_mbm import pad


def contrastive_loss(logits: torch.Tensor, text_group: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a (B, B) similarity matrix; row i's positives are the columns whose
    text is the same as row i's (``text_group`` gives equal ids to equal texts)."""
    positives = (text_group[:, None] == text_group[None, :]).float()
    targets = positives / positives.sum(dim=1, keepdim=True)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets.T)) / 2


class ContrastiveModel(nn.Module):
    """An encoder (an image backbone → its pooled output or CLS state, or ``WhisperEncoder`` → mean
    over the clip's frames)
    and a text model (GPT-2, hidden state at the final EOS), each with a linear projection."""

    def __init__(self, encoder: nn.Module, text_model: nn.Module, modality: str, embed_dim: int = 64,
                 init_temperature: float = 0.07):
        super().__init__()
        if modality not in ("image", "audio"):
            raise ValueError(f"modality must be image or audio, not {modality!r}")
        self.modality = modality
        self.encoder = encoder
        self.text = text_model
        width = encoder.config.hidden_sizes[-1] if modality == "image" and hasattr(encoder.config, "hidden_sizes") \
            else encoder.config.hidden_size  # a CNN's last stage width, or a transformer's width
        self.encoder_proj = nn.Linear(width, embed_dim, bias=False)
        self.text_proj = nn.Linear(text_model.config.hidden_size, embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / init_temperature)))

    def encode_inputs(self, pixel_values=None, input_features=None, frame_mask=None) -> torch.Tensor:
        if self.modality == "image":
            pooled = pooled_image(self.encoder(pixel_values=pixel_values))
        else:
            hidden = self.encoder(input_features=input_features).last_hidden_state
            # the conv stem halves the frame rate; average over the frames that hold the clip
            mask = frame_mask[:, ::2][:, : hidden.shape[1]].to(hidden.dtype).unsqueeze(-1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return F.normalize(self.encoder_proj(pooled), dim=-1)

    def encode_text(self, input_ids, attention_mask) -> torch.Tensor:
        hidden = self.text(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        last = attention_mask.sum(dim=1) - 1  # right-padded rows: the EOS position
        return F.normalize(self.text_proj(hidden[torch.arange(len(last)), last]), dim=-1)

    def forward(self, input_ids, attention_mask, text_group, pixel_values=None, input_features=None,
                frame_mask=None, return_loss: bool = True) -> dict:
        inputs = self.encode_inputs(pixel_values, input_features, frame_mask)
        texts = self.encode_text(input_ids, attention_mask)
        logits = self.logit_scale.exp().clamp(max=100) * inputs @ texts.T  # CLIP clips the scale at 100
        return {"loss": contrastive_loss(logits, text_group), "logits": logits}

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        self.encoder.save_pretrained(path / "encoder")
        self.text.save_pretrained(path / "text")
        heads = {"encoder_proj": self.encoder_proj.weight, "text_proj": self.text_proj.weight,
                 "logit_scale": self.logit_scale.detach()}
        save_file({k: v.contiguous() for k, v in heads.items()}, str(path / "heads.safetensors"),
                  metadata={"modality": self.modality})

    @classmethod
    def load(cls, path: Path) -> "ContrastiveModel":
        from safetensors import safe_open
        from transformers import AutoModel
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        path = Path(path)
        with safe_open(str(path / "heads.safetensors"), "pt") as f:
            modality = f.metadata()["modality"]
            heads = {k: f.get_tensor(k) for k in f.keys()}
        if modality == "image":
            from ..models.vision import load_image_backbone

            encoder = load_image_backbone(str(path / "encoder"))
        else:
            encoder = WhisperEncoder.from_pretrained(path / "encoder")
        model = cls(encoder, AutoModel.from_pretrained(path / "text"), modality, heads["encoder_proj"].shape[0])
        with torch.no_grad():
            model.encoder_proj.weight.copy_(heads["encoder_proj"])
            model.text_proj.weight.copy_(heads["text_proj"])
            model.logit_scale.copy_(heads["logit_scale"])
        return model.eval()


def text_tower(language_model) -> nn.Module:
    """A trainable copy of the LM without its head (``GPT2Model``, ``LlamaModel``, …: its
    ``base_model``), so aligning never changes the LM."""
    return copy.deepcopy(language_model.base_model)


class Pairs(Dataset):
    """The (input, text) pairs of one split; each item carries its own input tensors, so a batch
    can never pick rows out of another split's tensors."""

    def __init__(self, pairs: "PairSet"):
        if len(pairs.rows) != len(pairs.texts):
            raise ValueError("rows and texts differ in length")
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs.rows)

    def __getitem__(self, i: int) -> dict:
        row = self.pairs.rows[i]
        return {"inputs": {name: tensor[row] for name, tensor in self.pairs.inputs.items()},
                "text": self.pairs.texts[i]}


class PairCollator:
    """Stacks the items' inputs; tokenises texts right-padded, each ending in EOS; groups equal texts."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, items: list[dict]) -> dict:
        texts = [it["text"] for it in items]
        ids = [r + [self.tokenizer.eos_token_id] for r in self.tokenizer(texts)["input_ids"]]
        group_of: dict[str, int] = {}
        return {
            **pad(ids, self.tokenizer.pad_token_id, side="right"),
            "text_group": torch.tensor([group_of.setdefault(t, len(group_of)) for t in texts]),
            **{name: torch.stack([it["inputs"][name] for it in items]) for name in items[0]["inputs"]},
        }


@torch.no_grad()
def encode_texts(model: ContrastiveModel, tokenizer, texts: list[str], batch_size: int = 256) -> torch.Tensor:
    collate = PairCollator(tokenizer)
    out = []
    for start in range(0, len(texts), batch_size):
        batch = collate([{"inputs": {}, "text": t} for t in texts[start:start + batch_size]])
        out.append(model.encode_text(batch["input_ids"], batch["attention_mask"]))
    return torch.cat(out)


@torch.no_grad()
def retrieval(model: ContrastiveModel, tokenizer, pairs: "PairSet", ks=(1, 5), batch_size: int = 256) -> dict[str, float]:
    """Input→text recall@k: rank the distinct texts of the set for each input; a hit when the input's
    own text is among the top k. ``chance@k`` = k / number of distinct texts. ``recall@k/ci95_low``
    and ``…/ci95_high``: the bootstrap interval over the inputs."""
    from ..metrics.stats import mean_interval

    inputs, rows, texts = pairs.inputs, pairs.rows, pairs.texts
    model = model.eval()
    gallery = sorted(set(texts))
    index = {t: i for i, t in enumerate(gallery)}
    text_emb = encode_texts(model, tokenizer, gallery, batch_size)
    input_emb = torch.cat([model.encode_inputs(**{k: v[rows[s:s + batch_size]] for k, v in inputs.items()})
                           for s in range(0, len(rows), batch_size)])
    sims = input_emb @ text_emb.T
    truth = torch.tensor([index[t] for t in texts])
    rank = (sims > sims[torch.arange(len(truth)), truth].unsqueeze(1)).sum(dim=1)  # texts scored higher
    scores = {"n": float(len(rows)), "texts": float(len(gallery))}
    for k in ks:
        hits = (rank < k).float()
        scores[f"recall@{k}"] = hits.mean().item()
        scores[f"recall@{k}/ci95_low"], scores[f"recall@{k}/ci95_high"] = mean_interval(hits.numpy())[1:]
        scores[f"chance@{k}"] = min(1.0, k / len(gallery))
    return scores


class RetrievalCallback(TrainerCallback):
    """After each evaluation, validation recall@1/@5 join the Trainer's metrics and logged history,
    so they are plotted beside the losses and ``metric_for_best_model="recall@1"`` can keep the
    best epoch by the number the report shows."""

    def __init__(self, tokenizer, pairs: "PairSet"):
        self.tokenizer, self.pairs = tokenizer, pairs

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        scores = retrieval(model, self.tokenizer, self.pairs)
        extra = {f"eval_recall@{k}": scores[f"recall@{k}"] for k in (1, 5)}
        metrics.update(extra)  # the dict the Trainer then uses to pick the best checkpoint
        if state.log_history and "eval_loss" in state.log_history[-1]:
            state.log_history[-1].update(extra)
        return control


# ---------------------------------------------------------------- what 02_train runs

@dataclass
class PairSet:
    """One split's pairs: the input tensors (all rows), which rows pair with text, and the texts."""
    inputs: dict[str, torch.Tensor]
    rows: list[int]
    texts: list[str]


def image_pairs(split, processor) -> PairSet:
    """Every image of a ``datasets`` split as pixels; the images with a caption pair with it."""
    from ..models.vision import pixel_values

    captions = split["caption"]
    rows = [i for i, c in enumerate(captions) if c]
    return PairSet({"pixel_values": pixel_values(split, processor)}, rows, [captions[i] for i in rows])


def audio_pairs(split, extractor) -> PairSet:
    """Every clip of a speech split as log-mel features (and frame mask), paired with its transcript."""
    from ..models.audio import log_mel

    features, mask = log_mel(split, extractor)
    return PairSet({"input_features": features, "frame_mask": mask}, list(range(len(split))), split["transcript"])


def align_encoder(modality: str, encoder, language_model, tokenizer, pairs: dict[str, PairSet], output_dir: Path,
                  *, embed_dim: int, epochs: float, batch_size: int, learning_rate: float, seed: int,
                  bf16: bool = False, resume: bool = False):
    """Align ``encoder`` with a copy of ``language_model`` on the train pairs, keeping the epoch with
    the best validation recall@1. Returns (model, trainer, test recall before, test recall after):
    "before" is the same model at its random initialisation, the baseline the report shows."""
    from . import trainer as T

    model = ContrastiveModel(encoder, text_tower(language_model), modality, embed_dim)
    before = retrieval(model, tokenizer, pairs["test"])
    args = T.training_arguments(output_dir, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                                seed=seed, n_examples=len(pairs["train"].rows), eval_strategy="epoch",
                                save_strategy="epoch", save_total_limit=1, bf16=bf16,
                                load_best_model_at_end=True, metric_for_best_model="recall@1",
                                greater_is_better=True)
    validation = pairs["validation"]
    trainer = T.train(model, args, Pairs(pairs["train"]), PairCollator(tokenizer),
                      eval_dataset=Pairs(validation), resume=resume,
                      callbacks=[RetrievalCallback(tokenizer, validation)])
    after = retrieval(model, tokenizer, pairs["test"])
    return model, trainer, before, after


def recall_table(results: dict[str, tuple[dict, dict]]):
    """One row per direction ("image→text": (before, after)): trained recall, random init, chance."""
    import pandas as pd

    return pd.DataFrame([{"direction": d, "test inputs": int(a["n"]), "distinct texts": int(a["texts"]),
                          "recall@1": a["recall@1"], "recall@5": a["recall@5"],
                          "random init @1": b["recall@1"], "random init @5": b["recall@5"],
                          "chance @1": a["chance@1"], "chance @5": a["chance@5"]}
                         for d, (b, a) in results.items()])


def recall_metrics(results: dict[str, tuple[dict, dict]]) -> dict[str, float]:
    """Flat metric names: ``align/<modality>/recall@k`` and the two baselines."""
    metrics = {}
    for direction, (before, after) in results.items():
        key = direction.split("→")[0]
        for name in (k for k in after if k.startswith("recall")):  # recall@k and its interval bounds
            metrics[f"align/{key}/{name}"] = after[name]
            metrics[f"baseline/random_init/align/{key}/{name}"] = before[name]
            if "/" not in name:
                metrics[f"baseline/chance/align/{key}/{name}"] = after[name.replace("recall", "chance")]
    return metrics


def align_image_tower(run: Path, language_model, tokenizer, dataset, params: dict, settings: dict):
    """02_train's image half: the image tower (pretrained by ``image_encoder``, else new) aligned to
    the captions and saved under ``run/image_encoder``. Images without captions: a new tower is
    saved unaligned (03 starts it untrained). Returns ((recall before, after), loss history), or
    (None, None) when nothing was aligned. ``settings``: ``align_settings(params)``."""
    from ..models import vision
    from .trainer import loss_history

    run = Path(run)
    if dataset is None:
        return None, None
    if not any(dataset["train"]["caption"]):
        encoder = vision.new_image_encoder(vision.tower_config(params), params["seed"])
        encoder.save_pretrained(run / "image_encoder" / "encoder")
        vision.image_processor(params["image_size"]).save_pretrained(run / "image_encoder" / "encoder")
        print("no captions in the training images: the image tower is not aligned (03 starts it untrained)")
        return None, None
    if params["image_encoder"]:
        encoder, processor = vision.load_image_encoder(params["image_encoder"])
    else:
        processor = vision.image_processor(params["image_size"])
        encoder = vision.new_image_encoder(vision.tower_config(params), params["seed"])
    print(f"image tower: {type(encoder).__name__}, {encoder.num_parameters():,} parameters")
    pairs = {split: image_pairs(dataset[split], processor) for split in ("train", "validation", "test")}
    model, trainer, before, after = align_encoder("image", encoder, language_model, tokenizer, pairs,
                                                  run / "checkpoints" / "align_image", **settings)
    model.save(run / "image_encoder")
    processor.save_pretrained(run / "image_encoder" / "encoder")
    return (before, after), loss_history(trainer)


def align_audio_tower(run: Path, language_model, tokenizer, speech, params: dict, settings: dict,
                      tower: tuple | None = None):
    """02_train's audio half: the audio encoder — ``tower`` (encoder, feature extractor), the one
    02's CTC step trained; else a pretrained Whisper's by ``audio_encoder``, else new, its chunk as
    long as the longest clip — aligned to the transcripts and saved under ``run/audio_encoder``.
    Returns ((recall before, after), loss history), or (None, None)."""
    from ..models import audio
    from .trainer import loss_history

    run = Path(run)
    if speech is None:
        return None, None
    durations = [d for split in speech.values() for d in split["duration"]]
    encoder, extractor = tower if tower is not None else audio.audio_encoder_for(params, durations)
    pairs = {split: audio_pairs(speech[split], extractor) for split in ("train", "validation", "test")}
    print(f"log-mel features: {tuple(pairs['train'].inputs['input_features'].shape)} "
          f"({extractor.chunk_length} s chunks)")
    model, trainer, before, after = align_encoder("audio", encoder, language_model, tokenizer, pairs,
                                                  run / "checkpoints" / "align_audio", **settings)
    model.save(run / "audio_encoder")
    extractor.save_pretrained(run / "audio_encoder" / "encoder")
    return (before, after), loss_history(trainer)


def align_settings(params: dict) -> dict:
    """``align_encoder``'s training settings from 02_train's parameters."""
    return dict(embed_dim=params["align_dim"], epochs=params["align_epochs"], batch_size=params["align_batch_size"],
                learning_rate=params["align_learning_rate"], seed=params["seed"], bf16=params["bf16"],
                resume=params["resume"])
