"""``MbmProcessor``: tokenizer + image processor + audio feature extractor, and the one place
that builds task prompts and expands ``<image>`` / ``<audio>`` placeholders.

Every prompt carries one placeholder per input (``<image> question: … answer:``); the
processor expands it to as many copies as the model's connector emits tokens for that input,
so training rows, generation inputs and ``mbmlab ask`` are all built the same way.
"""
from __future__ import annotations

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin

from ..names import TASKS  # task → the inputs it needs; the prompt of each is built by MbmProcessor.prompt

IMAGE = "<image>"
AUDIO = "<audio>"
IGNORE_INDEX = -100  # label of positions that carry no loss (placeholders, prompts, padding)



class MbmProcessor(ProcessorMixin):
    def __init__(self, image_processor, feature_extractor, tokenizer, image_seq_length: int = 0,
                 audio_seq_length: int = 0, image_token: str = IMAGE, audio_token: str = AUDIO,
                 chat_template=None):
        self.image_seq_length, self.audio_seq_length = image_seq_length, audio_seq_length
        self.image_token, self.audio_token = image_token, audio_token
        super().__init__(image_processor, feature_extractor, tokenizer, chat_template=chat_template)
        self.image_token_id = self._token_id(image_token)
        self.audio_token_id = self._token_id(audio_token)

    def _token_id(self, token: str) -> int:
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {token!r} token; train it with mbmlab.models.text.train_tokenizer "
                             f"or load it with mbmlab.models.text.load_tokenizer, which add it")
        return token_id

    # ------------------------------------------------------------ prompts and placeholders

    @staticmethod
    def prompt(task: str, question: str = "", language: str = "") -> str:
        """The text prompt of a task, one placeholder per input; ``question``: the typed question
        (vqa; translated_vqa: in ``language``) or the English source (translate); ``language``: the
        target of the translate tasks."""
        # no space after a placeholder: the text then tokenises as in the LM's corpus ("question: …")
        if task == "caption":
            return f"{IMAGE}caption:"
        if task == "vqa":
            if not question:
                raise ValueError("the vqa task needs a question")
            return f"{IMAGE}question: {question} answer:"
        if task == "asr":
            return f"{AUDIO}transcribe:"
        if task == "spoken_vqa":
            return f"{IMAGE}{AUDIO}answer:"
        if task == "translated_vqa":
            if not (question and language):
                raise ValueError("the translated_vqa task needs a question and its language")
            return f"{IMAGE}question ({language}): {question} answer:"
        if task in ("translate", "speech_translate"):
            if not language:
                raise ValueError(f"the {task} task needs a target language")
            if task == "speech_translate":
                return f"{AUDIO}translate to {language}:"
            if not question:
                raise ValueError("the translate task needs the English source")
            return f"{IMAGE}translate to {language}: {question}"
        raise ValueError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")

    def expand(self, ids: list[int]) -> list[int]:
        """Each placeholder id becomes as many copies as the model has tokens for that input."""
        out: list[int] = []
        for token in ids:
            if token == self.image_token_id:
                if not self.image_seq_length:
                    raise ValueError("this processor's model has no vision tower; the prompt has an <image>")
                out += [token] * self.image_seq_length
            elif token == self.audio_token_id:
                if not self.audio_seq_length:
                    raise ValueError("this processor's model has no audio tower; the prompt has an <audio>")
                out += [token] * self.audio_seq_length
            else:
                out.append(token)
        return out

    def prompt_ids(self, prompts: list[str]) -> list[list[int]]:
        return [self.expand(ids) for ids in self.tokenizer(prompts)["input_ids"]]

    def target_ids(self, targets: list[str]) -> list[list[int]]:
        """Target token ids, each ending in the end-of-text token; a target starts with a space."""
        eos = self.tokenizer.eos_token_id
        return [ids + [eos] for ids in self.tokenizer([f" {t}" for t in targets], add_special_tokens=False)["input_ids"]]

    def training_row(self, prompt_ids: list[int], target_ids: list[int]) -> tuple[list[int], list[int]]:
        """``input_ids`` and ``labels`` of one training row: loss only on the target and its EOS."""
        return prompt_ids + target_ids, [IGNORE_INDEX] * len(prompt_ids) + target_ids

    # ------------------------------------------------------------ inputs

    def pixel_values(self, images) -> torch.Tensor:
        """(N, 3, H, W) for a list of PIL images (converted to RGB)."""
        return self.image_processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]

    def audio_features(self, audio: list[np.ndarray], sampling_rate: int | None = None) -> torch.Tensor:
        """(N, mel bins, frames) log-mel features of 1-d sample arrays, padded to the chunk length."""
        rate = self.feature_extractor.sampling_rate
        if sampling_rate is not None and sampling_rate != rate:
            raise ValueError(f"audio at {sampling_rate} Hz; the feature extractor expects {rate} Hz (resample first)")
        return self.feature_extractor([np.asarray(a, dtype=np.float32) for a in audio], sampling_rate=rate,
                                      return_tensors="pt", padding="max_length", truncation=True)["input_features"]

    def __call__(self, text=None, images=None, audio=None, sampling_rate: int | None = None,
                 padding_side: str = "left", return_tensors: str = "pt", **kwargs) -> BatchFeature:
        """Model inputs for prompts (``str`` or list) with their images and audio, left-padded for
        generation: ``input_ids``, ``attention_mask``, and ``pixel_values`` / ``input_features``
        when images / clips are given (one per placeholder, in order)."""
        if text is None:
            raise ValueError("MbmProcessor needs text: a prompt with an <image>/<audio> placeholder per input")
        texts = [text] if isinstance(text, str) else list(text)
        rows = self.prompt_ids(texts)
        data: dict = {}
        if images is not None:
            images = images if isinstance(images, (list, tuple)) else [images]
            n = sum(t.count(self.image_token) for t in texts)
            if n != len(images):
                raise ValueError(f"{len(images)} images for {n} {self.image_token} placeholders")
            data["pixel_values"] = self.pixel_values(images)
        if audio is not None:
            audio = audio if isinstance(audio, (list, tuple)) else [audio]
            n = sum(t.count(self.audio_token) for t in texts)
            if n != len(audio):
                raise ValueError(f"{len(audio)} clips for {n} {self.audio_token} placeholders")
            data["input_features"] = self.audio_features(audio, sampling_rate)
        data |= pad(rows, self.tokenizer.pad_token_id, side=padding_side)
        return BatchFeature(data, tensor_type=return_tensors)

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)


def pad(rows: list[list[int]], pad_id: int, side: str = "left", label_rows: list[list[int]] | None = None) -> dict:
    """``input_ids`` and ``attention_mask`` (and ``labels``, padded with the ignore index)."""
    if side not in ("left", "right"):
        raise ValueError(f"padding side must be left or right, not {side!r}")
    width = max(len(r) for r in rows)

    def fill(row, value):
        gap = [value] * (width - len(row))
        return gap + row if side == "left" else row + gap

    out = {"input_ids": torch.tensor([fill(r, pad_id) for r in rows]),
           "attention_mask": torch.tensor([fill([1] * len(r), 0) for r in rows])}
    if label_rows is not None:
        out["labels"] = torch.tensor([fill(r, IGNORE_INDEX) for r in label_rows])
    return out


__all__ = ["MbmProcessor", "IMAGE", "AUDIO", "IGNORE_INDEX", "pad"]
