"""One schema for every parameter of the notebook series.

The notebooks' ``parameters`` cells, the presets and the runner all agree with the
``SCHEMA`` below (a test checks the notebooks against it). Values are validated here,
before any notebook runs, so a typo never costs a half-finished run.
"""
from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.sources import SourceError, check_sources
from ..data.tasks import MASKABLE
from ..data.voices import VOICE_NAMES, trained_voices
from ..names import (ASR_CTC_WEIGHT, BASELINES, FUSIONS, IMAGE_CONNECTORS, LANGUAGES, MITIGATIONS, PARTS, PROJECTORS,
                     SOURCES, TASKS, TOWERS, TRANSLATE_TASKS)


class ParameterError(ValueError):
    """A parameter name or value the schema does not allow."""


@dataclass(frozen=True)
class Param:
    name: str
    type: type
    default: Any
    help: str
    notebooks: tuple[str, ...]
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    item: type = str  # a list's element type: str, or float (then minimum/maximum bound each element)

    def validate(self, value: Any) -> Any:
        value = self._coerce(value)
        if self.type is list:
            bad = [v for v in value if self.choices is not None and v not in self.choices]
            if bad:
                allowed = ", ".join(map(str, self.choices))
                raise ParameterError(f"{self.name} has {bad!r}, not allowed; allowed values: {allowed}")
            outside = [v for v in value if self.item is float and (
                self.minimum is not None and v < self.minimum or self.maximum is not None and v > self.maximum)]
            if outside:
                raise ParameterError(f"{self.name} has {outside!r}, outside [{self.minimum}, {self.maximum}]")
            return value
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(map(str, self.choices))
            raise ParameterError(f"{self.name}={value!r} is not allowed; allowed values: {allowed}")
        if self.minimum is not None and value < self.minimum:
            raise ParameterError(f"{self.name}={value!r} is below the minimum {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ParameterError(f"{self.name}={value!r} is above the maximum {self.maximum}")
        return value

    def _coerce(self, value: Any) -> Any:
        kind = self.type.__name__
        if self.type is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ParameterError(f"{self.name}={value!r} is not a boolean (use true or false)")
        if self.type is int:
            if isinstance(value, bool):
                raise ParameterError(f"{self.name}={value!r} is not an integer")
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            try:
                return int(str(value))
            except ValueError:
                raise ParameterError(f"{self.name}={value!r} is not an integer") from None
        if self.type is float:
            if isinstance(value, bool):
                raise ParameterError(f"{self.name}={value!r} is not a number")
            try:
                return float(value)
            except (TypeError, ValueError):
                raise ParameterError(f"{self.name}={value!r} is not a number") from None
        if self.type is list:  # a list of strings (or numbers); from the command line JSON or comma-separated
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    value = [v.strip() for v in value.split(",") if v.strip()]
            if self.item is float:
                try:
                    if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) for v in value):
                        raise ValueError
                    return [float(v) for v in value]
                except (TypeError, ValueError):
                    raise ParameterError(f"{self.name}={value!r} is not a list of numbers") from None
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ParameterError(f"{self.name}={value!r} is not a list of strings")
            return list(value)
        if self.type is str:
            if isinstance(value, bool) and self.choices and "true" in self.choices:  # a yes/no/auto switch
                return "true" if value else "false"
            if isinstance(value, str) and self.choices and "true" in self.choices:
                value = value.lower()
            if not isinstance(value, str):
                raise ParameterError(f"{self.name}={value!r} is not a string")
            return value
        raise TypeError(f"unsupported parameter type {kind}")  # schema bug, not user error


NB_COLLECT, NB_TRAIN, NB_FUSE, NB_EVALUATE, NB_BIAS, NB_FUSION_STUDY, NB_BIAS_STUDY = (
    "01_collect", "02_train", "03_fuse", "04_evaluate", "05_bias", "06_fusion_study", "07_bias_study",
)
NOTEBOOKS = (NB_COLLECT, NB_TRAIN, NB_FUSE, NB_EVALUATE, NB_BIAS)  # the default series
STUDY_SERIES = {"fusion-study": (NB_COLLECT, NB_TRAIN, NB_FUSION_STUDY),  # presets that run another series
                "bias-study": (NB_COLLECT, NB_TRAIN, NB_BIAS_STUDY),
                "scaling-cpu": (NB_COLLECT, NB_TRAIN), "scaling-gpu": (NB_COLLECT, NB_TRAIN)}
# the grid `mbmlab sweep --preset scaling-…` runs when no --grid is given: model size × training
# tokens. The tokens vary through the epochs over all the training data, not through
# max_train_images, which also shrinks the validation split: every run's loss is then measured
# on the same held-out lines.
SCALING_GRIDS = {"scaling-cpu": {"lm_dim": [16, 32, 64, 128], "lm_epochs": [0.25, 1.0]},
                 "scaling-gpu": {"lm_dim": [64, 128, 256, 512, 1024], "lm_epochs": [0.5, 2.0, 8.0]}}
ALL = NOTEBOOKS + (NB_FUSION_STUDY, NB_BIAS_STUDY)
SCHEMA: dict[str, Param] = {p.name: p for p in [
    Param("seed", int, 0, "seed for data splits, initialisation and training", ALL, minimum=0),
    # 01_collect
    Param("sources", list, ["easyvqa", "speech"], "data sources, combined (speech speaks the image sources' text)",
          (NB_COLLECT,), choices=SOURCES),
    Param("max_train_images", int, 0, "easy-VQA: cap on training+validation images; 0 means all", (NB_COLLECT,), minimum=0),
    Param("max_test_images", int, 0, "easy-VQA: cap on test images; 0 means all", (NB_COLLECT,), minimum=0),
    Param("val_fraction", float, 0.1, "fraction of training images held out for validation (user data: also for test)",
          (NB_COLLECT,), minimum=0.01, maximum=0.4),
    Param("scenes_images", int, 2000, "scenes: training+validation images", (NB_COLLECT,), minimum=1),
    Param("scenes_test_images", int, 500, "scenes: test images", (NB_COLLECT,), minimum=1),
    Param("scene_image_size", int, 64, "scenes: image side in pixels", (NB_COLLECT,), minimum=16, maximum=1024),
    Param("bias_pairs", list, [], "scenes: shape:colour pairs made to co-occur in train, e.g. circle:red",
          (NB_COLLECT,)),
    Param("bias_strength", float, 0.9, "scenes: P(colour | shape) in train for each bias pair",
          (NB_COLLECT,), minimum=0.0, maximum=1.0),
    Param("speech_voices", list, list(VOICE_NAMES), "speech: TTS voices (espeak-ng and flite)",
          (NB_COLLECT,), choices=VOICE_NAMES),
    Param("speech_heldout_voices", list, ["espeak-carib-m", "flite-rms-m"], "speech: voices that speak only "
          "validation and test clips (never trained on); their WER is reported apart", (NB_COLLECT,), choices=VOICE_NAMES),
    Param("speech_per_image", int, 2, "speech: texts spoken per image (the caption first, then questions)",
          (NB_COLLECT,), minimum=1),
    Param("speech_max_clips", int, 1000, "speech: cap on clips per split; 0 means no cap", (NB_COLLECT,), minimum=0),
    Param("speech_rate_jitter", float, 0.0, "speech: speaking rate drawn from 1 plus or minus this", (NB_COLLECT,),
          minimum=0.0, maximum=0.5),
    Param("speech_pitch_jitter", float, 0.0, "speech: pitch drawn from 1 plus or minus this", (NB_COLLECT,),
          minimum=0.0, maximum=0.5),
    Param("speech_noise_snr", float, 0.0, "speech: white noise at this SNR in dB; 0 means none", (NB_COLLECT,),
          minimum=0.0),
    Param("user_dir", str, "", "user: an imagefolder/audiofolder directory with metadata.csv", (NB_COLLECT,)),
    Param("user_hub", str, "", "user: a Hugging Face dataset name or path (needs the hub)", (NB_COLLECT,)),
    Param("image_column", str, "image", "user: image column", (NB_COLLECT,)),
    Param("text_column", str, "text", "user: caption or transcript column", (NB_COLLECT,)),
    Param("audio_column", str, "audio", "user: audio column", (NB_COLLECT,)),
    Param("question_column", str, "question", "user: question column", (NB_COLLECT,)),
    Param("answer_column", str, "answer", "user: answer column", (NB_COLLECT,)),
    Param("translation_column", str, "translation", "user: the caption's translation into target_language",
          (NB_COLLECT,)),
    Param("target_language", str, "zh", "the language captions, questions and answers are translated into "
          "(the drawn sources' grammar writes zh; user data brings its own through translation_column)",
          (NB_COLLECT,), choices=tuple(LANGUAGES)),
    Param("min_image_size", int, 16, "cleaning: drop images with a side under this many pixels", (NB_COLLECT,),
          minimum=1),
    Param("min_audio_seconds", float, 0.2, "cleaning: drop shorter clips", (NB_COLLECT,), minimum=0.0),
    Param("max_audio_seconds", float, 30.0, "cleaning: drop longer clips", (NB_COLLECT,), minimum=0.1),
    Param("silence_dbfs", float, -60.0, "cleaning: drop clips whose RMS level is below this (dBFS)", (NB_COLLECT,),
          maximum=0.0),
    # 02_train
    Param("tokenizer_name", str, "", "pretrained tokenizer name or path; empty trains byte-level BPE", (NB_TRAIN,)),
    Param("vocab_size", int, 400, "byte-level BPE vocabulary size (the translate preset's 500 makes each Chinese "
          "phrase of the translations one token; at 400 they take 15 tokens on average)", (NB_TRAIN,), minimum=300,
          maximum=50257),
    Param("lm_name", str, "", "pretrained causal LM name or path (e.g. gpt2, needs the hub); empty: a new GPT-2",
          (NB_TRAIN,)),
    Param("lm_dim", int, 128, "GPT-2 hidden size", (NB_TRAIN,), minimum=16),
    Param("lm_layers", int, 4, "GPT-2 layers", (NB_TRAIN,), minimum=1),
    Param("lm_heads", int, 4, "GPT-2 attention heads", (NB_TRAIN,), minimum=1),
    Param("lm_epochs", float, 1.0, "language-model pretraining epochs", (NB_TRAIN,), minimum=0.01),
    Param("lm_batch_size", int, 64, "language-model batch size (sequences)", (NB_TRAIN,), minimum=1),
    Param("lm_learning_rate", float, 2e-3, "language-model peak learning rate", (NB_TRAIN,), minimum=0.0),
    Param("bf16", str, "auto", "bf16 autocast for training: auto, on a GPU only (on CPUs without AMX or AVX512-BF16 "
          "bf16 is many times slower than fp32; with AVX512-BF16 it measured slower and less accurate), true "
          "(warns where not native), false", (NB_TRAIN, NB_FUSE), choices=("auto", "true", "false")),
    Param("resume", bool, False, "continue each training from its newest checkpoint in run_dir", (NB_TRAIN, NB_FUSE)),
    Param("image_encoder", str, "", "pretrained image backbone name or path (ViT, ResNet, CLIP); empty: a new one",
          (NB_TRAIN,)),
    Param("vision_tower", str, "resnet", "image backbone built from scratch when image_encoder is empty",
          (NB_TRAIN,), choices=TOWERS),
    Param("resnet_width", int, 32, "ResNet: width of the first stage (the stages are w, 2w, 4w)", (NB_TRAIN,),
          minimum=4),
    Param("resnet_depth", int, 1, "ResNet: basic blocks per stage", (NB_TRAIN,), minimum=1),
    Param("audio_encoder", str, "", "pretrained Whisper name or path (its encoder); empty: a new one", (NB_TRAIN,)),
    Param("audio_dim", int, 64, "audio encoder hidden size", (NB_TRAIN,), minimum=16),
    Param("audio_layers", int, 2, "audio encoder layers", (NB_TRAIN,), minimum=1),
    Param("audio_heads", int, 4, "audio encoder attention heads", (NB_TRAIN,), minimum=1),
    Param("audio_ctc_epochs", float, 80.0, "CTC pretraining epochs of the audio encoder (a character head, "
          "SpecAugment) before alignment; 0 skips it (at 40 the held-out voices' WER rose from 1.1% to 15.6% and "
          "the cascade fell 4.1 points below typed: docs/results.md)", (NB_TRAIN,), minimum=0.0),
    Param("audio_ctc_word_sequences", int, 1000, "CTC pretraining: extra training clips of new sentences made of "
          "the training transcripts' words, spoken by the trained TTS voices, so the head learns words, not the few "
          "templates (with 7 stage-2 epochs the cascade within 2 points of typed at three seeds; at 5, two seeds of "
          "three answered existence questions blind; docs/results.md); 0: none", (NB_TRAIN,), minimum=0),
    Param("audio_ctc_batch_size", int, 16, "clips per CTC pretraining batch", (NB_TRAIN,), minimum=1),
    Param("audio_ctc_learning_rate", float, 4e-3, "CTC pretraining peak learning rate", (NB_TRAIN,), minimum=0.0),
    Param("spec_augment", bool, True, "audio augmentation of training batches (CTC pretraining and fusion): speed "
          "perturbation 0.9/1.0/1.1, then SpecAugment's frequency and time masks", (NB_TRAIN, NB_FUSE)),
    Param("vtlp_warp", float, 0.0, "with spec_augment: vocal tract length perturbation of training batches, each "
          "clip's mel axis warped by a factor in [1 - w, 1 + w] (Jaitly & Hinton 2013 use 0.1); 0 turns it off",
          (NB_TRAIN, NB_FUSE), minimum=0.0, maximum=0.2),
    Param("align_dim", int, 64, "shared embedding size of the contrastive alignment", (NB_TRAIN,), minimum=8),
    Param("align_epochs", float, 12.0, "contrastive alignment epochs (each encoder; at 6 the image tower aligned in some seeds only, docs/results.md)", (NB_TRAIN,), minimum=0.01),
    Param("align_batch_size", int, 64, "pairs per contrastive batch", (NB_TRAIN,), minimum=2),
    Param("align_learning_rate", float, 1e-3, "contrastive alignment peak learning rate", (NB_TRAIN,), minimum=0.0),
    Param("image_size", int, 64, "image side in pixels fed to the image tower", (NB_TRAIN,), minimum=8),
    Param("patch_size", int, 8, "ViT patch side in pixels (must divide image_size)", (NB_TRAIN,), minimum=2),
    Param("vit_dim", int, 128, "ViT hidden size", (NB_TRAIN,), minimum=16),
    Param("vit_layers", int, 3, "ViT layers", (NB_TRAIN,), minimum=1),
    Param("vit_heads", int, 4, "ViT attention heads", (NB_TRAIN,), minimum=1),
    # 03_fuse: the towers are 02_train's (aligned, or re-initialised with *_init=random)
    Param("fusion", str, "prefix", "how the image and audio enter the GPT: prefix (soft tokens, LLaVA), "
          "cross_attention (gated blocks, Flamingo), early (raw patches and frames, no towers, Fuyu)", (NB_FUSE,),
          choices=FUSIONS),
    Param("projector", str, "mlp2x_gelu", "encoder-to-text connector (image and audio); resampler: learned "
          "queries (Flamingo's Perceiver resampler)", (NB_FUSE,), choices=PROJECTORS),
    Param("resampler_queries", int, 8, "resampler projector: tokens per image or clip", (NB_FUSE,), minimum=1),
    Param("cross_attention_every", int, 1, "cross_attention fusion: a gated block before every n-th decoder "
          "layer (the last layer always has one)", (NB_FUSE,), minimum=1),
    Param("early_patch_size", int, 16, "early fusion: pixels per patch side (must divide image_size)", (NB_FUSE,),
          minimum=1),
    Param("early_audio_frames", int, 16, "early fusion: log-mel frames (10 ms each) per token", (NB_FUSE,),
          minimum=1),
    Param("image_connector", str, "pooled", "pooled: the image's pooled vector → image_prefix_length tokens "
          "(ClipCap); patches: its grid of states, pixel-shuffled (LLaVA); attend: the grid read for each prompt "
          "(image_prefix_length heads, queried by a GRU over the prompt, attend over the grid with coordinate "
          "channels; one token per head)", (NB_FUSE,), choices=IMAGE_CONNECTORS),
    Param("image_prefix_length", int, 4, "pooled connector: tokens per image; attend: heads (one token each)",
          (NB_FUSE,), minimum=1),
    Param("attend_dim", int, 128, "attend connector: width of what each head reads", (NB_FUSE,), minimum=4),
    Param("attend_mix", int, 0, "attend connector: width of a layer reading all heads together (stage 0's "
          "classifier's hidden layer, kept), whose output joins every head's token; 0: heads projected one by one",
          (NB_FUSE,), minimum=0),
    Param("pixel_shuffle", int, 2, "patches connector: merge f×f image states into one token; f must divide the "
          "state grid", (NB_FUSE,), minimum=1),
    Param("audio_frame_pool", int, 4, "average this many audio encoder frames into one token", (NB_FUSE,),
          minimum=1),
    Param("tasks", list, [t for t in TASKS if t not in TRANSLATE_TASKS], "tasks trained together (those without "
          "data are skipped); with a translate task, 02's tokenizer and LM also learn the translations",
          (NB_TRAIN, NB_FUSE), choices=tuple(TASKS)),
    Param("translate_mask", float, 0.5, "translate: share of the images whose English source has its "
          "translate_mask_words masked in training (the masking probe: only the image can restore them)",
          (NB_FUSE,), minimum=0.0, maximum=1.0),
    Param("translate_mask_words", str, "colour", "translate: which words the masking hides (04's probe masks "
          "them in every test source)", (NB_FUSE, NB_EVALUATE), choices=tuple(MASKABLE)),
    Param("vision_init", str, "aligned", "start the image tower from 02_train's text-aligned one, or from random",
          (NB_FUSE,), choices=("aligned", "random")),
    Param("audio_init", str, "aligned", "start the audio tower from 02_train's text-aligned one, or from random",
          (NB_FUSE,), choices=("aligned", "random")),
    Param("ctc_weight", float, 0.3, "weight of the audio tower's CTC loss beside the decoder's in fusion training "
          "(joint CTC–attention); 0 turns it off; needs 02's CTC head", (NB_FUSE,), minimum=0.0),
    Param("fuse_stage0_epochs", int, 0, "stage 0 (attend connector): at most this many epochs training the image "
          "tower and the connector with an answer classifier on the typed VQA rows, stopped early on validation; "
          "0 skips it", (NB_FUSE,), minimum=0),
    Param("fuse_stage0_patience", int, 5, "stage 0 stops after this many epochs without a better validation exact "
          "match (the best epoch's weights are kept)", (NB_FUSE,), minimum=1),
    Param("fuse_stage0_restarts", int, 1, "stage 0 trained this many times from the same starting weights (seeds "
          "seed, seed+1, …: the classifier's initialisation and the batch order), the best on validation kept; on "
          "the scenes one seed learns spatial questions and another leaves them at chance (docs/results.md)",
          (NB_FUSE,), minimum=1),
    Param("fuse_stage0_mirror", bool, False, "stage 0 mirrors training images left to right at random, the answers "
          "a mirror changes changed (a spatial question's yes and no); images with questions of no known rule (a "
          "user's data) are never mirrored", (NB_FUSE,)),
    Param("fuse_stage0_balance_types", bool, False, "stage 0 weighs every question type the same, in its loss (each "
          "row by 1 / its type's share) and in the validation score it stops and chooses on (the types' mean exact "
          "match): a rare type, such as the scenes' spatial questions (7.5% of the rows), is then not learned last "
          "(docs/results.md)", (NB_FUSE,)),
    Param("fuse_stage0_keep_reader", bool, False, "after stage 0, stages 1–2 keep the attend connector's reading as "
          "stage 0 taught it (its word table, GRU, queries, keys and values; only its projection into the GPT "
          "learns); false: the reading trains on under the GPT's loss (measured better: docs/results.md)",
          (NB_FUSE,)),
    Param("fuse_stage1_epochs", float, 0.25, "stage 1: epochs training only the connectors; 0 skips it",
          (NB_FUSE,), minimum=0.0),
    Param("fuse_stage1_learning_rate", float, 2e-3, "stage 1 peak learning rate", (NB_FUSE,), minimum=0.0),
    Param("fuse_train_parts", list, ["image_projector", "audio_projector", "fusion", "language_model", "audio_tower"],
          "stage 2: the parts trained (the rest stays frozen)", (NB_FUSE,), choices=PARTS),
    Param("fuse_epochs", float, 7.0, "stage 2 epochs (over images; every task of an image is used)",
          (NB_FUSE,), minimum=0.01),
    Param("fuse_batch_images", int, 8, "images (or clips) per fusion training batch", (NB_FUSE,), minimum=1),
    Param("fuse_vqa_per_image", int, 0, "03's training (and the blind and image-only baselines') uses at most this "
          "many of an image's VQA questions per epoch, drawn afresh each epoch; the other tasks' rows all; 0: every "
          "question (3 on the default preset: stage 2 1.8x faster, but validation VQA 94.2% after 7 epochs against "
          "99.97%: docs/results.md)", (NB_FUSE,), minimum=0),
    Param("fuse_learning_rate", float, 1e-3, "stage 2 peak learning rate", (NB_FUSE,), minimum=0.0),
    Param("fuse_keep_best_epoch", bool, True, "stage 2 scores the validation answers and transcripts after each "
          "epoch (teacher-forced: exact where greedy decoding would give the target) and keeps the best epoch's "
          "weights; false: the last epoch's", (NB_FUSE,)),
    # 04_evaluate
    Param("eval_batch_size", int, 256, "sequences per generation batch", (NB_EVALUATE,), minimum=1),
    Param("num_beams", int, 1, "beam width for generation; 1 means greedy", (NB_EVALUATE,), minimum=1),
    Param("asr_ctc_weight", float, ASR_CTC_WEIGHT, "transcripts decoded jointly with the audio tower's CTC head: its share "
          "of each candidate token's score beside the GPT's (Watanabe et al. 2017); 0: the GPT alone "
          "(0.3 chosen on validation clips, docs/results.md)", (NB_EVALUATE, NB_BIAS_STUDY), minimum=0.0, maximum=1.0),
    Param("evaluate_split", str, "test", "the split 04 evaluates the fused model on: test (the report), or "
          "validation (for choosing: mbmlab tune's trials; the trained baselines, which stop early on validation, "
          "are then skipped)", (NB_EVALUATE,), choices=("test", "validation")),
    Param("gallery_size", int, 8, "test examples shown with their predictions", (NB_EVALUATE,), minimum=0),
    Param("pocketsphinx_clips", int, 100, "test clips PocketSphinx (a real offline English ASR, ~0.7 s a clip) "
          "transcribes beside the fused model; 0 skips it", (NB_EVALUATE,), minimum=0),
    Param("explain_images", int, 100, "single-object test images whose colour and shape answers are explained "
          "for the sanity check (0 skips the explanation maps)", (NB_EVALUATE,), minimum=0),
    Param("baselines", list, list(BASELINES), "VQA baselines: blind (question only) and image_only (no question) "
          "trained like the fused model, random_init (untrained), cnn_bow (the supervised CNN + bag-of-words "
          "classifier)", (NB_EVALUATE,), choices=tuple(BASELINES)),
    Param("baseline_epochs", float, 0.0, "the trained baselines' cap on stage-2 epochs over the VQA rows (0: the "
          "fused model's fuse_epochs); they stop earlier when their validation loss has not improved for "
          "baseline_patience evaluations (4 an epoch), keeping the best", (NB_EVALUATE,), minimum=0.0),
    Param("baseline_patience", int, 2, "evaluations of the validation loss without a new best before a trained "
          "baseline stops (early stopping)", (NB_EVALUATE,), minimum=1),
    # 06_fusion_study: 03_fuse's parameters (and eval_batch_size) too, for every strategy alike
    Param("study_fusions", list, list(FUSIONS), "the fusion strategies compared", (NB_FUSION_STUDY,),
          choices=FUSIONS),
    Param("study_seeds", int, 1, "seeds per strategy (seed, seed+1, …); 2 or more give mean ± std",
          (NB_FUSION_STUDY,), minimum=1),
    # 07_bias_study: 03_fuse's parameters too; the scenes parameters come from the run's 01_collect
    Param("bias_strengths", list, [0.5, 0.7, 0.9], "P(colour | shape) of each bias pair in the training scenes, "
          "one fused model per value (validation and test stay balanced)", (NB_BIAS_STUDY,), minimum=0.0,
          maximum=1.0, item=float),
    Param("bias_mitigation", str, "oversample", "trained at the strongest bias beside it: oversample repeats "
          "training images so every colour of a biased shape is seen equally often; none skips it",
          (NB_BIAS_STUDY,), choices=MITIGATIONS),
    Param("bias_seeds", int, 1, "trainings per arm (seed, seed+1, …: initialisation and batch order vary, the "
          "scenes stay); 2 or more give the findings' differences over seeds", (NB_BIAS_STUDY,), minimum=1),
    Param("probe_images", int, 100, "test scenes re-rendered with one attribute changed (counterfactual probes)",
          (NB_BIAS_STUDY,), minimum=1),
]}
# the studies train and evaluate as 03_fuse and 04_evaluate do, so they take their parameters
for _name, _param in list(SCHEMA.items()):
    if (NB_FUSE in _param.notebooks and _name != "resume") or _name == "eval_batch_size":
        extra = (NB_BIAS_STUDY,) if _name == "fusion" else (NB_FUSION_STUDY, NB_BIAS_STUDY)  # 06 varies fusion
        SCHEMA[_name] = dataclasses.replace(_param, notebooks=_param.notebooks + extra)

# how the scenes are read (docs/results.md §"Why the scenes are not read"): the attend connector,
# taught in 03's stage 0 (training images mirrored; at most 60 epochs with a patience of 15: the
# spatial questions are learned late, after the other types have levelled off — patience 5 stopped
# one seed at spatial 63.5%), its heads read together by a mixing layer (stage 0's hidden layer),
# then trained on with the GPT in stages 1–2
SCENES_READ = {"image_connector": "attend", "fuse_stage0_epochs": 60, "fuse_stage0_patience": 15,
               "fuse_stage0_mirror": True, "attend_mix": 256}
# Presets only override schema defaults; ``default`` is the schema itself.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {  # what CI runs many times: small (session 22: half the images, 4 stage-2 epochs), yet above the majority answer
        "sources": ["easyvqa", "scenes", "speech"], "scenes_images": 60, "scenes_test_images": 20,
        "bias_pairs": ["circle:red"], "speech_max_clips": 40,
        "max_train_images": 150, "max_test_images": 50, "vocab_size": 500, "tasks": list(TASKS),
        "lm_dim": 64, "lm_layers": 1, "lm_heads": 4, "lm_epochs": 2.0,
        "resnet_width": 8, "audio_dim": 32, "audio_layers": 1, "audio_heads": 2, "audio_ctc_epochs": 10.0,
        "audio_ctc_word_sequences": 40, "align_epochs": 2.0,  # 02's path with them, run in CI
        "align_batch_size": 32, "fuse_stage1_epochs": 1.0, "fuse_epochs": 4.0, "fuse_batch_images": 8,
        "fuse_learning_rate": 2e-3, "gallery_size": 4, "explain_images": 24, "pocketsphinx_clips": 8,
        "baseline_epochs": 2.0,
    },
    "default": {},
    "full": {
        "vocab_size": 1000, "lm_dim": 256, "lm_layers": 6, "lm_heads": 8, "lm_epochs": 3.0,
        "resnet_width": 64, "resnet_depth": 2, "fuse_epochs": 10.0, "num_beams": 3,
        "audio_dim": 128, "audio_layers": 4, "audio_heads": 4, "align_epochs": 20.0, "speech_max_clips": 0,
    },
    # 01 and 02 as in default, then every fusion strategy through 03 and 04's headline at
    # default's budget (06_fusion_study), 3 seeds per strategy (the findings compare them seed by seed)
    "fusion-study": {"study_seeds": 3},
    # 01 with the procedural scenes (and their spoken questions), then 02–05 as default does, the
    # images read for each question (the attend connector, taught in 03's stage 0)
    # (stage 2 at 4 epochs, as measured on the scenes; the default went to 5 for easy-VQA's yes/no questions,
    # then to 7 with 02's word-sequence clips)
    # (and 02's alignment at the 6 epochs the scenes were measured with)
    # (and without the word-sequence clips of 02's CTC step, as measured: the default took them with 7 epochs)
    "scenes": SCENES_READ | {"sources": ["scenes", "speech"], "fuse_epochs": 4.0, "align_epochs": 6.0,
                             "audio_ctc_word_sequences": 0},
    # 01 (procedural scenes and their spoken questions, unbiased: P(colour | shape) = 1/8 for the
    # pairs) and 02 as in default, then 07_bias_study: the fused model at each strength, the
    # mitigation, the probes, the voice-group disparities; 3 trainings (seeds) per arm; the scenes
    # read as the scenes preset reads them
    "bias-study": SCENES_READ | {"sources": ["scenes", "speech"], "bias_pairs": ["circle:red", "triangle:blue"],
                                 "bias_strength": 0.125, "speech_max_clips": 400, "bias_seeds": 3,
                                 "fuse_epochs": 4.0, "align_epochs": 6.0, "audio_ctc_word_sequences": 0},
    # the scaling study (mbmlab sweep --preset scaling-cpu): 01 (easy-VQA only) and 02, whose LM
    # is the measured model; the encoders' alignment kept to a token pass (not measured here)
    "scaling-cpu": {"sources": ["easyvqa"], "lm_layers": 2, "lm_heads": 4, "align_epochs": 0.01},
    "scaling-gpu": {"sources": ["easyvqa"], "lm_layers": 4, "lm_heads": 8, "align_epochs": 0.01, "vocab_size": 1000},
    # the default series with the translate tasks in the mix (image-grounded English → Chinese,
    # typed and spoken; issue 23): the default's 1,000 s had no room for them; 500 tokens so each
    # Chinese phrase is one token
    "translate": {"tasks": list(TASKS), "vocab_size": 500},
}


def series(preset: str) -> tuple[str, ...]:
    """The notebooks a preset runs, in order."""
    return STUDY_SERIES.get(preset, NOTEBOOKS)


def defaults() -> dict[str, Any]:
    return {name: copy.deepcopy(p.default) for name, p in SCHEMA.items()}


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is JSON if it parses, else a string."""
    if "=" not in text:
        raise ParameterError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def resolve(preset: str = "default", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Schema defaults, then the preset, then the overrides; every value validated."""
    if preset not in PRESETS:
        raise ParameterError(f"unknown preset {preset!r}; allowed values: {', '.join(PRESETS)}")
    values = defaults()
    values.update(PRESETS[preset])
    for key, value in (overrides or {}).items():
        if key not in SCHEMA:
            raise ParameterError(f"unknown parameter {key!r}; known parameters: {', '.join(SCHEMA)}")
        values[key] = value
    resolved = {key: SCHEMA[key].validate(value) for key, value in values.items()}
    check_consistency(resolved)
    return resolved


def of_run(run_dir, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """A finished run's parameters (its ``run.json``) with ``--set``-style ``overrides``
    (``key=value`` texts), validated under today's schema: what a benchmark re-running one of the
    run's steps trains with."""
    values = json.loads((Path(run_dir) / "run.json").read_text())["params"]
    return resolve("default", {k: v for k, v in values.items() if k in SCHEMA} | dict(parse_override(s) for s in overrides))


def check_consistency(values: dict[str, Any]) -> None:
    """Rules that involve more than one parameter."""
    if {"image_size", "patch_size"} <= values.keys() and values.get("vision_tower") == "vit":
        if values["image_size"] % values["patch_size"]:
            raise ParameterError(
                f"patch_size={values['patch_size']} must divide image_size={values['image_size']}")
    if {"image_size", "early_patch_size"} <= values.keys() and values["image_size"] % values["early_patch_size"]:
        raise ParameterError(f"early_patch_size={values['early_patch_size']} must divide "
                             f"image_size={values['image_size']}")
    if {"image_size", "vision_tower", "pixel_shuffle"} <= values.keys() and not values.get("image_encoder"):
        # the tower's state grid: ViT patches, or the ResNet's 16× downsampling
        stride = values["patch_size"] if values["vision_tower"] == "vit" else 16
        grid = values["image_size"] // stride
        if grid < 1 or grid % values["pixel_shuffle"]:
            raise ParameterError(f"pixel_shuffle={values['pixel_shuffle']} must divide the {grid}×{grid} grid of "
                                 f"image states ({values['vision_tower']} at image_size={values['image_size']})")
    if values.get("fuse_stage0_epochs", 0) > 0 and values.get("image_connector", "attend") != "attend":
        raise ParameterError(f"fuse_stage0_epochs={values['fuse_stage0_epochs']} trains the attend connector's "
                             f"reading; image_connector is {values['image_connector']!r} (set image_connector=attend "
                             f"or fuse_stage0_epochs=0)")
    for name in ("tasks", "fuse_train_parts"):
        if name in values and not values[name]:
            raise ParameterError(f"{name} is empty; allowed values: {', '.join(SCHEMA[name].choices)}")
    if "sources" in values:
        try:
            check_sources(values)
        except SourceError as err:
            raise ParameterError(str(err)) from None
    if {"speech_voices", "speech_heldout_voices"} <= values.keys():
        try:
            trained_voices(values["speech_voices"], values["speech_heldout_voices"])
        except ValueError as err:
            raise ParameterError(f"speech_heldout_voices: {err}") from None
    if values.get("min_audio_seconds", 0) >= values.get("max_audio_seconds", float("inf")):
        raise ParameterError("min_audio_seconds must be below max_audio_seconds")
    for dim, heads in (("lm_dim", "lm_heads"), ("vit_dim", "vit_heads"), ("audio_dim", "audio_heads")):
        if {dim, heads} <= values.keys() and values[dim] % values[heads]:
            raise ParameterError(f"{heads}={values[heads]} must divide {dim}={values[dim]}")


def parameters_cell(notebook: str, run_dir_help: str) -> str:
    """The source of ``notebook``'s parameters cell, written from the schema (defaults and help)."""
    lines = [f'run_dir = ""  # {run_dir_help}']
    lines += [f"{name} = {p.default!r}  # {p.help}" for name, p in SCHEMA.items() if notebook in p.notebooks]
    return "\n".join(lines)


def for_notebook(notebook: str, values: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``values`` that ``notebook`` declares in its parameters cell."""
    return {k: v for k, v in values.items() if notebook in SCHEMA[k].notebooks}


def check(notebook: str, values: dict[str, Any]) -> dict[str, Any]:
    """Validate a notebook's own parameters (used by each notebook when run by hand)."""
    declared = {k for k, p in SCHEMA.items() if notebook in p.notebooks}
    unknown = set(values) - declared
    if unknown:
        raise ParameterError(f"{notebook} does not take {sorted(unknown)}; it takes {sorted(declared)}")
    checked = {k: SCHEMA[k].validate(v) for k, v in values.items()}
    check_consistency(checked)
    return checked
