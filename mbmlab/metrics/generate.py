"""Generation with the fused model: batched for any task (prompts built by the processor,
left-padded, greedy or beam, KV cache on; each batch holds one task), and ``ask`` for one
picture, clip or question at a time (the seed's application, ``mbmlab ask``, and the notebooks'
examples)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm import tqdm  # text bars: readable in JupyterLab and in the rendered HTML

from ..models.processing_mbm import pad
from ..names import ASR_CTC_WEIGHT, GRAMMAR_LANGUAGES, LANGUAGES, TASKS

TRANSCRIBES = ("asr",)  # the tasks whose target is the clip's transcript (what the CTC head spells)


class AskError(ValueError):
    """Inputs ``ask`` cannot use; the message says what to change."""


@dataclass
class Answer:
    task: str
    prompt: str
    text: str
    heard: str | None = None  # a spoken question as the model transcribed it (the cascade), else None
    asked: str | None = None  # an English --question with --lang zh as the grammar translated it, else None


@torch.no_grad()
def generate(model, processor, examples, pixel_values: torch.Tensor | None = None,
             input_features: torch.Tensor | None = None, *, batch_size: int = 256,
             max_new_tokens: int | dict[str, int] = 8, num_beams: int = 1, use_cache: bool = True,
             progress: bool = True, desc: str = "generating", frame_mask: torch.Tensor | None = None,
             ctc_weight: float = 0.0) -> list[str]:
    """The model's text for each example (``mbmlab.data.tasks.Example``), in order, stripped.

    ``pixel_values`` / ``input_features`` hold the split's images / clips; an example's ``image``
    and ``clip`` are rows of them. ``max_new_tokens`` may be given per task. With ``ctc_weight`` > 0
    and the clips' ``frame_mask``, transcripts are decoded jointly with the audio tower's CTC head
    (``joint_decoding``; a model without the head decodes with the GPT alone).
    """
    model.eval()
    outputs: list[str | None] = [None] * len(examples)
    by_task: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_task.setdefault(ex.task, []).append(i)
    tokenizer = processor.tokenizer
    vocabulary = None  # each id's text, for joint decoding: decoded once per call, not per batch
    for task, indices in by_task.items():
        needs = TASKS[task]
        if "image" in needs and pixel_values is None or "audio" in needs and input_features is None:
            raise ValueError(f"{task} examples need {' and '.join(needs)} inputs")
        limit = max_new_tokens[task] if isinstance(max_new_tokens, dict) else max_new_tokens
        prompt_ids = processor.prompt_ids([processor.prompt(task, examples[i].question, examples[i].language)
                                           for i in indices])
        starts = range(0, len(indices), batch_size)
        for start in tqdm(starts, desc=f"{desc} {task}", disable=not progress):
            chunk = indices[start:start + batch_size]
            batch = pad(prompt_ids[start:start + batch_size], tokenizer.pad_token_id, side="left")
            if "image" in needs:
                batch["pixel_values"] = pixel_values[[examples[i].image for i in chunk]]
            if "audio" in needs:
                batch["input_features"] = input_features[[examples[i].clip for i in chunk]]
            width = batch["input_ids"].shape[1]
            if task in TRANSCRIBES and ctc_weight and vocabulary is None:
                from .joint_decoding import token_texts

                vocabulary = token_texts(tokenizer)
            joint = joint_scores(model, tokenizer, batch, [examples[i].clip for i in chunk], frame_mask, width,
                                 ctc_weight, num_beams, vocabulary) if task in TRANSCRIBES else None
            generated = model.generate(**batch, max_new_tokens=limit, num_beams=num_beams, do_sample=False,
                                       use_cache=use_cache, logits_processor=joint, pad_token_id=tokenizer.pad_token_id,
                                       eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
            texts = tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
            for i, text in zip(chunk, texts, strict=True):
                outputs[i] = text.strip()
    return outputs


def joint_scores(model, tokenizer, batch: dict, clips: list[int], frame_mask: torch.Tensor | None, width: int,
                 weight: float, beams: int, vocabulary: tuple[list[str], frozenset[int]] | None = None):
    """The joint CTC–attention scorer for a batch of clips (``None``: the GPT decodes alone — no
    weight, no frame mask, or no CTC head); ``vocabulary``: ``joint_decoding.token_texts(tokenizer)``
    when the caller already has it."""
    head = getattr(model.model, "audio_ctc_head", None)
    if not weight or frame_mask is None or head is None:
        return None
    from transformers import LogitsProcessorList

    from ..models.ctc import frame_lengths
    from .joint_decoding import JointCtcScores, token_texts

    frames = model.model.get_audio_frames(batch["input_features"])
    texts, special = vocabulary or token_texts(tokenizer)
    scorer = JointCtcScores(head(frames), frame_lengths(frame_mask[clips], frames.shape[1]), texts,
                            tokenizer.eos_token_id, width, weight, head.characters, beams, special_ids=special)
    return LogitsProcessorList([scorer])


def max_target_tokens(processor, targets: list[str]) -> int:
    """New tokens enough for the longest of ``targets`` and its end-of-text token."""
    if not targets:
        return 1
    return max(len(ids) for ids in processor.target_ids(targets))


def task_for(image: bool, audio: bool, question: bool, translate: bool = False, language: str = "") -> str:
    """The task that what is given asks for (see ``ask``): with a target ``language``, an image
    and an English text to translate → translate; a clip alone → speech_translate; an image and a
    typed question → translated_vqa (asked and answered in ``language``)."""
    if language or translate:
        if not language:
            raise AskError(f"--translate needs --to LANGUAGE; supported: {', '.join(LANGUAGES)}")
        if language not in LANGUAGES:
            raise AskError(f"unsupported language {language!r}; supported: {', '.join(LANGUAGES)}")
        if question:
            if translate:
                raise AskError("give either --translate TEXT or --question, not both")
            if image and not audio:
                return "translated_vqa"
            raise AskError("--lang answers a typed --question about a picture (--image); a spoken question is "
                           "answered in English")
        if translate and image and not audio:
            return "translate"
        if audio and not image and not translate:
            return "speech_translate"
        raise AskError("translate either an English text about a picture (--image and --translate TEXT) or a "
                       "spoken English caption (--audio alone), each with --to LANGUAGE")
    if audio and question:
        raise AskError("give the question either typed (--question) or spoken (--audio), not both")
    if image:
        return "spoken_vqa" if audio else "vqa" if question else "caption"
    if audio:
        return "asr"
    raise AskError("nothing to answer about: give --image (with --question or --audio), or --audio alone")


def question_in(question: str, language: str) -> str:
    """A question for translated_vqa in ``language``: as typed when it is written in Chinese (any CJK
    character) or no drawn source's grammar writes ``language`` (``GRAMMAR_LANGUAGES``); an English
    question through the grammar that wrote the training questions (``mbmlab.data.chinese.question``),
    refused when the grammar cannot."""
    if language not in GRAMMAR_LANGUAGES.values() or any("\u4e00" <= ch <= "\u9fff" for ch in question):
        return question
    from ..data import chinese

    try:
        return chinese.question(question)
    except chinese.Untranslatable as err:
        raise AskError(f"ask in Chinese with --lang zh (e.g. 图中是什么形状？), or in English the grammar of the "
                       f"training questions translates (e.g. 'what shape is in the image?'): {err}") from None


def ask(model, processor, image=None, audio=None, question: str = "", max_new_tokens: int = 24,
        num_beams: int = 1, ctc_weight: float = ASR_CTC_WEIGHT, cascade: bool = True, translate: str = "",
        language: str = "") -> Answer:
    """The model's answer for a PIL image and/or 16 kHz samples and/or a typed question; or, with
    a target ``language``, the translation of ``translate`` (English, about the image) or of a
    spoken caption (the clip alone), or the answer to ``question`` in ``language`` (asked in it, or
    in English through ``question_in``), refused unless the model was trained to write ``language``.

    A clip alone is transcribed jointly with the CTC head at ``ctc_weight`` (as 04 transcribes). A
    spoken question about an image is, with ``cascade`` and a model that transcribes that way,
    transcribed first and then asked typed (``Answer.heard`` holds what was heard; 04 measures this
    path as ``spoken_vqa/cascade``); without, the answer comes from the clip directly."""
    task = task_for(image is not None, audio is not None, bool(question), bool(translate), language)
    missing = [m for m in (("image",) if image is not None else ()) + (("audio",) if audio is not None else ())
               if m not in model.config.modalities]
    if missing:
        raise AskError(f"this model was trained without {' and '.join(missing)} input; "
                       f"its inputs are {', '.join(model.config.modalities) or 'text only'}")
    if task == "translated_vqa":
        trained = getattr(model.config, "answer_languages", None) or []
        if language not in trained:
            raise AskError(f"this model was not trained to answer in {language!r}; it answers in English"
                           f"{''.join(', ' + t for t in trained)} (the translated_vqa task: the translate preset)")
        asked = question_in(question, language)
        if asked != question:
            answer = ask(model, processor, image=image, question=asked, max_new_tokens=max_new_tokens,
                         num_beams=num_beams, language=language)
            return Answer(task, answer.prompt, answer.text, asked=asked)
    elif language:
        trained = getattr(model.config, "translate_languages", None) or []
        if language not in trained:
            raise AskError(f"this model was not trained to translate into {language!r}; it translates into "
                           f"{', '.join(trained) if trained else 'nothing (trained without the translate tasks)'}")
    if task == "spoken_vqa" and cascade and ctc_weight and getattr(model.model, "audio_ctc_head", None) is not None:
        heard = ask(model, processor, audio=audio, max_new_tokens=max_new_tokens, num_beams=num_beams,
                    ctc_weight=ctc_weight).text
        if not heard:
            return Answer(task, "", "", heard)
        typed = ask(model, processor, image=image, question=heard, max_new_tokens=max_new_tokens, num_beams=num_beams)
        return Answer(task, typed.prompt, typed.text, heard)
    prompt = processor.prompt(task, translate or question, language)
    inputs = processor(text=prompt, images=[image] if image is not None else None,
                       audio=[audio] if audio is not None else None)
    tokenizer = processor.tokenizer
    with torch.no_grad():
        joint = None
        if task in TRANSCRIBES:
            mask = processor.feature_extractor([audio], sampling_rate=processor.feature_extractor.sampling_rate,
                                               return_tensors="pt", padding="max_length", truncation=True,
                                               return_attention_mask=True)["attention_mask"]
            joint = joint_scores(model, tokenizer, inputs, [0], mask, inputs["input_ids"].shape[1], ctc_weight, num_beams)
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                             logits_processor=joint)
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    return Answer(task, prompt, text)
