"""04_evaluate's sections: the test split generated once for every task, then one function per
section — VQA against its baselines, captioning, speech recognition, spoken VQA against the
same questions typed, VQA in the translations' language, translation, and the ask examples.
Each returns the tables the notebook shows and the metrics it records; the metrics' formulas
live in ``mbmlab.metrics``."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..artifacts import load_json
from ..data.collect import Processed, load_processed
from ..data.tasks import Example, task_examples
from ..metrics import intervals
from ..metrics.asr import error_rates_by
from ..metrics.frames import predictions_frame
from ..metrics.generate import ask, generate, max_target_tokens
from ..metrics.vqa import blind_questions, majority_answer, majority_by_type
from ..training.fused import split_inputs


@dataclass
class TestSplit:
    """The fused model's generations on the test split, with what they were generated from."""

    model: object
    processor: object
    processed: Processed
    tasks: list[str]  # the tasks the model was trained on
    present: list[str]  # those with test examples
    images: object  # the test images (a datasets split), or None
    speech: object  # the test clips, or None
    pixels: dict
    features: dict
    examples: list[Example]
    train_examples: list[Example]
    limits: dict[str, int]  # new-token limit per task, from the training targets
    predictions: list[str]
    notes: list[str] = field(default_factory=list)
    batch_size: int = 256
    num_beams: int = 1
    ctc_weight: float = 0.0  # the CTC head's share in decoding transcripts
    name: str = "test"  # the split generated on: test, or validation (for choosing, mbmlab tune)

    def frame(self, task: str) -> pd.DataFrame:
        """One row per test example of ``task``: target, prediction, the image's and the clip's columns."""
        return predictions_frame(self.examples, self.predictions, task, self.images, self.speech)

    def train_targets(self, task: str) -> list[str]:
        return [e.target for e in self.train_examples if e.task == task]

    @property
    def trained_voices(self) -> set[str]:
        """The voices of the training clips (none without speech)."""
        speech = self.processed.speech
        return set(speech["train"]["voice"]) if speech is not None else set()


def voice_groups(frame: pd.DataFrame, trained_voices: set[str]) -> dict[str, pd.Series]:
    """``seen_voices`` / ``heldout_voices``: which rows of a clip frame are spoken by a voice the
    training clips have, or by one they never have (``speech_heldout_voices``); empty when every
    test voice was trained on."""
    heldout = ~frame["voice"].isin(trained_voices)
    if not heldout.any():
        return {}
    return {name: rows for name, rows in (("seen_voices", ~heldout), ("heldout_voices", heldout)) if rows.any()}


def generate_test_split(run: Path, batch_size: int, num_beams: int, ctc_weight: float = 0.0,
                        name: str = "test") -> TestSplit:
    """Load the run's fused model (through the Auto classes) and its data; generate every test
    example of every task it was trained on (batched, KV cache on); transcripts decoded jointly
    with the CTC head at ``ctc_weight`` (``metrics.joint_decoding``; 0: the GPT alone).
    ``name="validation"``: the validation split instead (for choosing; the metrics keep their names,
    ``params.json``'s ``evaluate_split`` says which split they are from)."""
    if name not in ("test", "validation"):
        raise ValueError(f"evaluate on 'test' or 'validation', not {name!r}")
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from .. import models  # noqa: F401  (registers the family)

    from ..artifacts import check_model_folder

    processed = load_processed(load_json(run, "dataset.json")["path"])
    model = AutoModelForImageTextToText.from_pretrained(check_model_folder(run / "fused", "03_fuse"))
    processor = AutoProcessor.from_pretrained(run / "fused")
    tasks = load_json(run, "fuse.json")["tasks"]
    pixels, features, masks = split_inputs(processed, processor, (name,), model.config.modalities, with_masks=True)
    images = processed.images[name] if "image" in model.config.modalities else None
    speech = processed.speech[name] if "audio" in model.config.modalities else None
    examples = task_examples(images, speech, tasks)
    train_examples = task_examples(processed.images["train"] if images is not None else None,
                                   processed.speech["train"] if speech is not None else None, tasks)
    limits = {task: max_target_tokens(processor, [e.target for e in train_examples if e.task == task])
              for task in tasks}
    predictions = generate(model, processor, examples, pixels.get(name), features.get(name),
                           batch_size=batch_size, num_beams=num_beams, max_new_tokens=limits,
                           frame_mask=masks.get(name), ctc_weight=ctc_weight)
    present = sorted({e.task for e in examples})
    notes = [f"note: no {name} data for {task!r}; its metrics are left out" for task in tasks if task not in present]
    if name != "test":
        notes.insert(0, f"note: evaluated on the {name} split (evaluate_split), not test: numbers for choosing, "
                        "not for reporting")
    return TestSplit(model, processor, processed, tasks, present, images, speech, pixels, features, examples,
                     train_examples, limits, predictions, notes, batch_size, num_beams, ctc_weight, name)


def vqa_section(split: TestSplit, baseline_answers: dict[str, list[str]]):
    """The VQA table: the model, the majority answers (overall and per question type) and the
    trained baselines, each with exact match and its interval (resampled by image). Returns
    (per-question frame, {answerer: metrics}, the metrics to record)."""
    qa = split.frame("vqa")
    train_qa = pd.DataFrame([{"answer": e.target, "question_type": e.question_type}
                             for e in split.train_examples if e.task == "vqa"])
    majority = majority_answer(list(train_qa["answer"]))
    qa["majority"] = majority
    qa["majority_by_type"] = qa["question_type"].map(majority_by_type(train_qa))
    qa["correct"] = intervals.answers_correct(qa["prediction"], qa["answer"])
    answerers = {"model": "prediction", f"majority ('{majority}')": "majority", "majority per type": "majority_by_type"}
    answerers |= {kind: kind for kind in baseline_answers}
    answered = qa.assign(**baseline_answers)
    scores = {who: intervals.accuracy_metrics(intervals.answers_correct(answered[column], answered["answer"]),
                                              answered["question_type"], "exact_match", clusters=answered["image_id"])
              for who, column in answerers.items()}
    metrics = {f"vqa/{k}": v for k, v in scores["model"].items()}
    metrics |= {f"baseline/majority/vqa/{k}": v for k, v in scores[f"majority ('{majority}')"].items()}
    metrics |= {f"baseline/majority_by_type/vqa/{k}": v for k, v in scores["majority per type"].items()}
    for kind in baseline_answers:
        metrics |= {f"baseline/{kind}/vqa/{k}": v for k, v in scores[kind].items()}
    for source, part in qa.groupby("source"):
        metrics |= intervals.accuracy_metrics(part["correct"], prefix=f"vqa/source/{source}/exact_match",
                                              clusters=part["image_id"])
    blind = blind_questions(qa)
    qa["answered_blind"] = qa["question"].isin(blind["question"])  # per question, in vqa_predictions.csv
    metrics["vqa/blind_questions/texts"] = len(blind)
    metrics["vqa/blind_questions/share"] = float(qa["answered_blind"].mean())
    if "cnn_bow" in baseline_answers:
        qa["cnn_bow_correct"] = intervals.answers_correct(answered["cnn_bow"], answered["answer"])
        metrics |= intervals.paired_difference(qa["correct"], qa["cnn_bow_correct"], qa["image_id"],
                                               "vqa/minus_cnn_bow/exact_match")
    return qa, scores, metrics


def blind_finding(qa: pd.DataFrame, shown: int = 4) -> str:
    """What 04 says of the question texts the model answers alike for every image although their
    answers vary: ``qa`` is ``vqa_section``'s frame, whose ``answered_blind`` column flags them
    (``metrics.vqa.blind_questions``, applied once there); a model that reads the image has none."""
    asked = qa["answered_blind"]
    if not asked.any():
        return "no question text is answered blind (one answer for every image although the answers vary)"
    blind = blind_questions(qa[asked])  # the flagged texts' table: each text is judged on its own rows
    examples = "; ".join(f"'{r.question}' → always '{r.answered}' ({100 * r.exact_match:.0f}% right, {r.images} images)"
                         for r in blind.head(shown).itertuples())
    return (f"answered blind: {len(blind)} question texts ({asked.sum()} questions, {100 * asked.mean():.1f}%) get one "
            f"answer for every image although their answers vary — the model does not read the image for them: "
            f"{examples}{' …' if len(blind) > shown else ''}")


def reference_finding(metrics: dict) -> str:
    """What 04 says of the fused model against the supervised cnn_bow reference (needs
    ``vqa/minus_cnn_bow/exact_match`` from ``vqa_section``)."""
    name = "vqa/minus_cnn_bow/exact_match"
    if name not in metrics:
        return "no cnn_bow reference in this run (add cnn_bow to the baselines parameter)"
    d, low, high = (100 * metrics[f"{name}{end}"] for end in ("", "/ci95_low", "/ci95_high"))
    numbers = (f"fused {100 * metrics['vqa/exact_match']:.1f}% vs cnn_bow "
               f"{100 * metrics['baseline/cnn_bow/vqa/exact_match']:.1f}%: paired difference {d:+.1f} points "
               f"[{low:+.1f}, {high:+.1f}] (95% interval, images resampled)")
    if high < 0:
        return f"the fused model falls behind the supervised reference: {numbers}"
    if low > 0:
        return f"the fused model beats the supervised reference: {numbers}"
    return f"no difference from the supervised reference is established (the interval includes 0): {numbers}"


def caption_section(split: TestSplit):
    """Caption metrics with intervals for the model and the majority caption. Returns (per-image
    frame, {captioner: metrics}, the metrics to record)."""
    captions = split.frame("caption").rename(columns={"answer": "reference"})
    references = {r.image_id: [r.reference] for r in captions.itertuples()}
    majority = majority_answer(split.train_targets("caption"))
    scores = {
        "model": intervals.caption_metrics_with_intervals(references, dict(zip(captions["image_id"],
                                                                                captions["prediction"]))),
        f"majority ('{majority}')": intervals.caption_metrics_with_intervals(references, {i: majority for i in references}),
    }
    metrics = {f"caption/{k}": v for k, v in scores["model"].items()}
    metrics |= {f"baseline/majority/caption/{k}": v for k, v in scores[f"majority ('{majority}')"].items()}
    return captions, scores, metrics


def asr_section(split: TestSplit, pocketsphinx_clips: int = 0, seed: int = 0):
    """(per-clip frame, WER/CER with intervals resampled by clip as metrics, WER per voice).
    With ``pocketsphinx_clips`` > 0, PocketSphinx (``reference_asr``) transcribes a seeded sample
    of that many test clips: ``baseline/pocketsphinx/asr/…`` and the fused model's rates on the
    same clips, ``asr/on_pocketsphinx_clips/…``; the frame's ``pocketsphinx`` column holds its
    transcripts (empty where it was not asked)."""
    asr = split.frame("asr").rename(columns={"answer": "reference"})
    rates = intervals.error_rate_metrics(list(asr["reference"]), list(asr["prediction"]))
    metrics = {f"asr/{k}": v for k, v in rates.items()}
    for group, rows in voice_groups(asr, split.trained_voices).items():  # asr/wer/heldout_voices, …/ci95_low, asr/cer/…
        part = asr[rows]
        for key, value in intervals.error_rate_metrics(list(part["reference"]), list(part["prediction"])).items():
            unit, _, bound = key.partition("/")
            metrics[f"asr/{unit}/{group}" + (f"/{bound}" if bound else "")] = value
        metrics[f"asr/clips/{group}"] = float(len(part))
    if pocketsphinx_clips > 0 and len(asr):
        from . import reference_asr

        clips = [e.clip for e in split.examples if e.task == "asr"]
        chosen = reference_asr.sample(len(asr), pocketsphinx_clips, seed)
        heard = reference_asr.transcribe(split.speech[clips[i]]["audio"] for i in chosen)
        asr["pocketsphinx"] = ""
        asr.loc[asr.index[chosen], "pocketsphinx"] = heard
        same = asr.iloc[chosen]
        theirs = intervals.error_rate_metrics(list(same["reference"]), heard)
        ours = intervals.error_rate_metrics(list(same["reference"]), list(same["prediction"]))
        metrics |= {f"baseline/pocketsphinx/asr/{k}": v for k, v in theirs.items()}
        metrics |= {f"asr/on_pocketsphinx_clips/{k}": v for k, v in ours.items()}
        metrics["baseline/pocketsphinx/asr/clips"] = float(len(chosen))
    return asr, metrics, error_rates_by(asr, "voice")


def voice_lines(metrics: dict, name: str) -> list[str]:
    """``name`` (``asr/wer``, ``spoken_vqa/exact_match``) for the seen and the held-out voices
    apart, one line each (nothing when no voice was held out)."""
    clips = {"asr/wer": "asr/clips"}.get(name)
    return [g.replace("_", " ") + (f" ({int(metrics[f'{clips}/{g}'])} clips)" if clips else "")
            + f": {show_interval(metrics, f'{name}/{g}')}"
            for g in ("seen_voices", "heldout_voices") if f"{name}/{g}" in metrics]


def pocketsphinx_lines(metrics: dict) -> list[str]:
    """What 04 prints of PocketSphinx beside the fused model (nothing when it did not run)."""
    if "baseline/pocketsphinx/asr/wer" not in metrics:
        return []
    return [f"PocketSphinx (CMU's bundled English model) on {int(metrics['baseline/pocketsphinx/asr/clips'])} of them: "
            f"WER {show_interval(metrics, 'baseline/pocketsphinx/asr/wer')}; the fused model on the same clips "
            f"{show_interval(metrics, 'asr/on_pocketsphinx_clips/wer')}"]


def spoken_vqa_section(split: TestSplit, qa: pd.DataFrame | None):
    """Spoken VQA exact match, and the same questions typed (from ``qa``, the VQA frame) beside it.
    Returns (per-question frame, the metrics to record)."""
    spoken = split.frame("spoken_vqa")
    spoken["correct"] = intervals.answers_correct(spoken["prediction"], spoken["answer"])
    metrics = intervals.accuracy_metrics(spoken["correct"], prefix="spoken_vqa/exact_match", clusters=spoken["image_id"])
    for group, rows in voice_groups(spoken, split.trained_voices).items():
        metrics |= intervals.accuracy_metrics(spoken.loc[rows, "correct"], prefix=f"spoken_vqa/exact_match/{group}",
                                              clusters=spoken.loc[rows, "image_id"])
    if qa is not None:
        typed = qa.drop_duplicates(["image_id", "question"]).set_index(["image_id", "question"])["prediction"]
        same = spoken.join(typed.rename("typed"), on=["image_id", "question"])
        spoken["typed_correct"] = intervals.answers_correct(same["typed"], same["answer"])
        metrics |= intervals.accuracy_metrics(spoken["typed_correct"], prefix="spoken_vqa/typed_exact_match",
                                              clusters=spoken["image_id"])
        metrics |= intervals.paired_difference(spoken["correct"], spoken["typed_correct"], spoken["image_id"],
                                               "spoken_vqa/minus_typed/exact_match")
    return spoken, metrics | spoken_cascade(split, spoken)


def translated_vqa_section(split: TestSplit, qa: pd.DataFrame | None):
    """VQA asked and answered in the data's language (Chinese for the drawn sources): exact match
    per question type, resampled by image; beside it the same questions asked in English (from
    ``qa``, the VQA frame: each translated question's English original, the first one of its image
    that translates to it) and the paired difference. Returns (per-question frame, metrics)."""
    asked = split.frame("translated_vqa")
    asked["correct"] = intervals.answers_correct(asked["prediction"], asked["answer"])
    metrics = intervals.accuracy_metrics(asked["correct"], asked["question_type"], "translated_vqa/exact_match",
                                         clusters=asked["image_id"])
    if qa is None:
        return asked, metrics
    english: dict[tuple[str, str], str] = {}
    for r in split.images.select_columns(["image_id", "questions", "translated_questions"]):
        for en, translated in zip(r["questions"], r["translated_questions"], strict=True):
            english.setdefault((r["image_id"], translated), en)
    asked["english"] = [english[key] for key in zip(asked["image_id"], asked["question"])]
    typed = qa.drop_duplicates(["image_id", "question"]).set_index(["image_id", "question"])["correct"]
    asked["english_correct"] = asked.join(typed.rename("english_correct"), on=["image_id", "english"])["english_correct"]
    metrics |= intervals.accuracy_metrics(asked["english_correct"], prefix="translated_vqa/english_exact_match",
                                          clusters=asked["image_id"])
    return asked, metrics | intervals.paired_difference(asked["correct"], asked["english_correct"], asked["image_id"],
                                                        "translated_vqa/minus_english/exact_match")


def translated_vqa_lines(metrics: dict, questions: int, language: str) -> list[str]:
    """What 04 prints of VQA in another language: its exact match, the English one, the gap."""
    lines = [f"{questions} test questions asked and answered in {language}: exact match "
             f"{_show(metrics, 'translated_vqa/exact_match', percent=True)} (95% interval, images resampled)"]
    if "translated_vqa/english_exact_match" in metrics:
        d, low, high = (100 * metrics[f"translated_vqa/minus_english/exact_match{end}"]
                        for end in ("", "/ci95_low", "/ci95_high"))
        lines += [f"the same questions in English: {_show(metrics, 'translated_vqa/english_exact_match', percent=True)}",
                  f"{language} minus English, the same questions: {d:+.1f} points [{low:+.1f}, {high:+.1f}] — "
                  + ("no difference established (the interval includes 0)" if low <= 0 <= high
                     else f"{'better' if low > 0 else 'worse'} in {language}")]
    return lines


def spoken_lines(metrics: dict, questions: int) -> list[str]:
    """What 04 prints of spoken VQA: end to end (by seen and held-out voices), the same questions
    typed, and the cascade, each where it was measured."""
    lines = [f"{questions} spoken test questions, answered from the clip: exact match "
             f"{show_interval(metrics, 'spoken_vqa/exact_match')}", *voice_lines(metrics, "spoken_vqa/exact_match")]
    if "spoken_vqa/typed_exact_match" in metrics:
        lines.append(f"the same questions typed: exact match {show_interval(metrics, 'spoken_vqa/typed_exact_match')}")
    if "spoken_vqa/cascade/exact_match" in metrics:
        lines.append("transcribed by the model, then asked typed (the cascade): exact match "
                     f"{show_interval(metrics, 'spoken_vqa/cascade/exact_match')}")
        lines += ["  " + line for line in voice_lines(metrics, "spoken_vqa/cascade/exact_match")]
    for name, what in (("spoken_vqa/minus_typed/exact_match", "answered from the clip"),
                       ("spoken_vqa/cascade_minus_typed/exact_match", "the cascade"),
                       ("spoken_vqa/cascade_minus_typed/exact_match/seen_voices", "the cascade, trained voices"),
                       ("spoken_vqa/cascade_minus_typed/exact_match/heldout_voices", "the cascade, held-out voices")):
        if name in metrics:
            d, low, high = (100 * metrics[f"{name}{end}"] for end in ("", "/ci95_low", "/ci95_high"))
            lines.append(f"{what} minus typed, the same questions: {d:+.1f} points [{low:+.1f}, {high:+.1f}] "
                         "(95% interval, images resampled)")
    return lines


def spoken_cascade(split: TestSplit, spoken: pd.DataFrame) -> dict:
    """The cascade beside the end-to-end answers: each spoken question as the model itself
    transcribed its clip (the ``asr`` predictions), asked typed about the image. Adds the
    ``heard`` and ``cascade`` columns to ``spoken`` (the rows of ``split.frame("spoken_vqa")``) and
    returns ``spoken_vqa/cascade/exact_match`` with its interval (resampled by image); nothing when
    the model was not trained to transcribe."""
    heard = {e.clip: p for e, p in zip(split.examples, split.predictions, strict=True) if e.task == "asr"}
    asked = [e for e in split.examples if e.task == "spoken_vqa"]
    if not asked or any(e.clip not in heard for e in asked):
        return {}
    typed = [Example("vqa", e.image, None, heard[e.clip], e.target, e.question_type) for e in asked]
    spoken["heard"] = [heard[e.clip] for e in asked]
    spoken["cascade"] = _generate(split, typed, split.pixels[split.name], "vqa" if "vqa" in split.limits else "spoken_vqa")
    spoken["cascade_correct"] = intervals.answers_correct(spoken["cascade"], spoken["answer"])
    out = intervals.accuracy_metrics(spoken["cascade_correct"], prefix="spoken_vqa/cascade/exact_match",
                                     clusters=spoken["image_id"])
    if "typed_correct" in spoken:
        out |= intervals.paired_difference(spoken["cascade_correct"], spoken["typed_correct"], spoken["image_id"],
                                           "spoken_vqa/cascade_minus_typed/exact_match")
    for group, rows in voice_groups(spoken, split.trained_voices).items():  # voices it trained on, and the others
        part = spoken[rows]
        out |= intervals.accuracy_metrics(part["cascade_correct"], prefix=f"spoken_vqa/cascade/exact_match/{group}",
                                          clusters=part["image_id"])
        if "typed_correct" in part:
            out |= intervals.paired_difference(part["cascade_correct"], part["typed_correct"], part["image_id"],
                                               f"spoken_vqa/cascade_minus_typed/exact_match/{group}")
    return out


def show_interval(metrics: dict, name: str) -> str:
    """``0.9876 [0.9801, 0.9923]`` for a metric recorded with its ``/ci95_low`` and ``/ci95_high``."""
    return f"{metrics[name]:.4f} [{metrics[name + '/ci95_low']:.4f}, {metrics[name + '/ci95_high']:.4f}]"


def first_spoken_question(split: TestSplit):
    """(test image, its clip) of the first spoken question whose image is in the test images, or None."""
    images, speech = split.images, split.speech
    image_ids = set(images["image_id"])
    row = next((i for i, (k, image_id) in enumerate(zip(speech["kind"], speech["image_id"]))
                if k == "question" and image_id in image_ids), None)
    if row is None:
        return None
    clip = speech[row]
    return images[list(images["image_id"]).index(clip["image_id"])]["image"], clip


def ask_examples(split: TestSplit) -> list[str]:
    """The seed's application on test data: a typed question (in English, and in each language the
    model answers in) and a caption for the first test image, and the first spoken question (as
    ``mbmlab ask`` answers it: transcribed, then asked) with its true answer."""
    model, processor, images, lines = split.model, split.processor, split.images, []
    if images is not None and len(images):
        picture = images[0]["image"]
        lines.append("typed: " + ask(model, processor, image=picture, question="what shape is in the image?").text)
        lines.append("caption: " + (ask(model, processor, image=picture).text if "caption" in split.tasks
                                    else "(not trained)"))
        answers_in = (getattr(model.config, "answer_languages", None) or []) if "translated_vqa" in split.tasks else []
        for language in answers_in:
            answer = ask(model, processor, image=picture, question="what shape is in the image?", language=language)
            lines.append(f"typed in {language}: {answer.asked or 'what shape is in the image?'} → {answer.text}")
    if split.speech is not None and images is not None and "spoken_vqa" in split.tasks:
        found = first_spoken_question(split)
        if found is not None:
            picture, clip = found
            samples = clip["audio"].get_all_samples().data.mean(0).numpy()
            answer = ask(model, processor, image=picture, audio=samples, ctc_weight=split.ctc_weight)
            heard = f" (heard {answer.heard!r})" if answer.heard is not None else ""
            lines.append(f"spoken: {clip['transcript']!r}{heard} → {answer.text} (true: {clip['answer']})")
    return lines


# ---------------------------------------------------------------- translation

def incongruent_rows(n: int, seed: int = 0):
    """For each of ``n`` images the row of another: each image takes the next one's place in a
    seeded random order (a cyclic shift), so none keeps its own — the incongruent decoding of
    Elliott (2018), which asks whether a translation changes when the image does."""
    import numpy as np

    if n < 2:
        raise ValueError("incongruent images need at least two test images")
    order = np.random.default_rng(seed).permutation(n)
    rows = np.empty(n, dtype=int)
    rows[order] = np.roll(order, 1)
    return rows


def translate_section(split: TestSplit, mask_kind: str = "colour", seed: int = 0):
    """Image-grounded translation of the test captions: BLEU and chrF (sacrebleu, the target
    language's tokenizer) with intervals resampling images, for the model with each image, with a
    blank image (text-only translation) and with another test image's (incongruent); the paired
    gaps image − blank and image − incongruent. Then the masking probe (Caglayan et al. 2019): every
    ``mask_kind`` word of every source masked, and how often the translation names the image's
    colours (or shapes), in order, under each of the three images. Returns (per-image frame, metrics)."""
    import torch

    from ..data.tasks import mask_words
    from ..metrics.translation import translation_difference, translation_metrics

    examples = [e for e in split.examples if e.task == "translate"]
    frame = split.frame("translate").rename(columns={"question": "english", "answer": "reference"})
    language, pixels = examples[0].language, split.pixels[split.name]
    images = {"image": pixels, "blank_image": torch.zeros_like(pixels)}
    swap = incongruent_rows(len(pixels), seed) if len(pixels) > 1 else None  # one test image: no other to show
    if swap is not None:
        images["incongruent_image"] = pixels[torch.as_tensor(swap)]
    masked = [Example(e.task, e.image, e.clip, mask_words(e.question, mask_kind), e.target, language=e.language)
              for e in examples]
    for name, values in images.items():
        if name != "image":
            frame[name] = _generate(split, examples, values, "translate")
        frame[f"masked/{name}"] = _generate(split, masked, values, "translate")
    frame = frame.rename(columns={"prediction": "image"})
    references, clusters, metrics = list(frame["reference"]), frame["image_id"], {}
    for name in images:
        scores = translation_metrics(references, list(frame[name]), language, clusters, seed)
        prefix = "translate" if name == "image" else f"baseline/{name}/translate"
        metrics |= {f"{prefix}/{k}": v for k, v in scores.items()}
        if name != "image":
            metrics |= translation_difference(references, list(frame["image"]), list(frame[name]), language,
                                              f"translate/minus_{name}", clusters, seed)
    if language == "zh":  # the probe reads the colour and shape words of the grammar's lexicon
        metrics |= _probe(frame, examples, swap, mask_kind, images, seed)
    return frame, metrics


def _probe(frame: pd.DataFrame, examples: list[Example], swap, kind: str, images, seed: int) -> dict:
    """The masking probe's columns (added to ``frame``) and metrics: the masked translation names
    the image's ``kind`` words (``match``; also per source, as one easy-VQA shape has one colour to
    name, chance 1 in 8, and a scene up to three in order), and under the incongruent image the
    other image's (``follows``; only where that image has a caption)."""
    from ..data.chinese import words_in

    said_of = {e.image: words_in(e.target, kind) for e in examples}
    truth = pd.Series([said_of[e.image] for e in examples], index=frame.index)
    metrics = {}
    for name in images:
        prefix = "translate" if name == "image" else f"baseline/{name}/translate"
        said = frame[f"masked/{name}"].map(lambda text: words_in(text, kind))
        frame[f"masked/{name}/match"] = said == truth
        metrics |= intervals.accuracy_metrics(frame[f"masked/{name}/match"], prefix=f"{prefix}/probe/{kind}",
                                              clusters=frame["image_id"], seed=seed,
                                              groups=frame["source"] if "source" in frame else None)
    metrics |= intervals.paired_difference(frame["masked/image/match"], frame["masked/blank_image/match"],
                                           frame["image_id"], f"translate/probe/{kind}/minus_blank_image", seed=seed)
    if swap is None:
        return metrics
    other = pd.Series([said_of.get(int(swap[e.image])) for e in examples], index=frame.index)
    known = other.notna()
    if not known.any():
        return metrics
    said = frame.loc[known, "masked/incongruent_image"].map(lambda text: words_in(text, kind))
    frame["masked/incongruent_image/follows"] = pd.Series(said == other[known], dtype="boolean")
    metrics |= intervals.accuracy_metrics(said == other[known], prefix=f"baseline/incongruent_image/translate/probe/"
                                          f"{kind}/follows", clusters=frame.loc[known, "image_id"], seed=seed)
    return metrics


def speech_translate_section(split: TestSplit, seed: int = 0):
    """Spoken captions translated end to end from the clip, beside the cascade: the clip as the
    model itself transcribed it (its ``asr`` predictions), then translated by its text translation
    (the translate task with a blank image: the clip has no image) and, where every clip's image is
    in the split, with the image the caption describes (``cascade_with_image``: more than the clip
    carries, so it says how far the transcript, not the missing picture, holds the cascade back).
    BLEU and chrF with intervals resampling images (the clips of one image together), and the paired
    gaps end-to-end − each cascade. Returns (per-clip frame, metrics)."""
    import torch

    from ..metrics.translation import translation_difference, translation_metrics

    examples = [e for e in split.examples if e.task == "speech_translate"]
    frame = split.frame("speech_translate").rename(columns={"question": "transcript", "answer": "reference"})
    language, references, clusters = examples[0].language, list(frame["reference"]), frame["image_id"]
    metrics = {f"speech_translate/{k}": v
               for k, v in translation_metrics(references, list(frame["prediction"]), language, clusters, seed).items()}
    heard = {e.clip: p for e, p in zip(split.examples, split.predictions, strict=True) if e.task == "asr"}
    if "translate" not in split.tasks or any(e.clip not in heard for e in examples):
        return frame, metrics
    frame["heard"] = [heard[e.clip] for e in examples]
    typed = [(i, Example("translate", 0, None, text, e.target, language=e.language))
             for i, (e, text) in enumerate(zip(examples, frame["heard"])) if text]
    blank = torch.zeros_like(split.pixels[split.name][:1])
    frame["cascade"] = ""  # nothing heard, nothing translated
    frame.loc[frame.index[[i for i, _ in typed]], "cascade"] = _generate(split, [e for _, e in typed], blank, "translate")
    metrics |= {f"speech_translate/cascade/{k}": v
                for k, v in translation_metrics(references, list(frame["cascade"]), language, clusters, seed).items()}
    metrics |= translation_difference(references, list(frame["prediction"]), list(frame["cascade"]),
                                      language, "speech_translate/minus_cascade", clusters, seed)
    row_of = {image_id: i for i, image_id in enumerate(split.images["image_id"])}
    if not all(image_id in row_of for image_id in frame["image_id"]):
        return frame, metrics
    seen = [(i, Example("translate", row_of[frame["image_id"].iloc[i]], None, e.question, e.target, language=e.language))
            for i, e in typed]
    frame["cascade_with_image"] = ""
    frame.loc[frame.index[[i for i, _ in seen]], "cascade_with_image"] = _generate(
        split, [e for _, e in seen], split.pixels[split.name], "translate")
    metrics |= {f"speech_translate/cascade_with_image/{k}": v for k, v in translation_metrics(
        references, list(frame["cascade_with_image"]), language, clusters, seed).items()}
    return frame, metrics | translation_difference(references, list(frame["prediction"]), list(frame["cascade_with_image"]),
                                                   language, "speech_translate/minus_cascade_with_image", clusters, seed)


def translate_lines(metrics: dict, images: int, kind: str) -> list[str]:
    """What 04 prints of translation: BLEU and chrF under each image, the gaps, the probe."""
    lines = [f"{images} test captions translated; BLEU and chrF (0–100) [95% interval, images resampled]"]
    for name, what in (("translate", "with the image"), ("baseline/blank_image/translate", "with a blank image"),
                       ("baseline/incongruent_image/translate", "with another test image (incongruent)")):
        if f"{name}/bleu" in metrics:
            lines.append(f"  {what}: BLEU {_show(metrics, name + '/bleu')}, chrF {_show(metrics, name + '/chrf')}")
    for name in ("blank_image", "incongruent_image"):
        if f"translate/minus_{name}/bleu" in metrics:
            lines.append(f"  image minus {name.replace('_', ' ')}: BLEU {_show(metrics, f'translate/minus_{name}/bleu')}"
                         f", chrF {_show(metrics, f'translate/minus_{name}/chrf')}")
    if f"translate/probe/{kind}" in metrics:
        lines.append(f"masking probe, every {kind} word of the source masked: the translation names the image's "
                     f"{kind}s (in order)")
        for name, what in (("translate", "with the image"), ("baseline/blank_image/translate", "with a blank image"),
                           ("baseline/incongruent_image/translate", "with another test image")):
            if f"{name}/probe/{kind}" in metrics:
                lines.append(f"  {what}: {_show(metrics, f'{name}/probe/{kind}', percent=True)}")
        follows = f"baseline/incongruent_image/translate/probe/{kind}/follows"
        if follows in metrics:
            lines.append(f"  with another test image, naming that image's {kind}s: {_show(metrics, follows, percent=True)}")
    return lines


def speech_translate_lines(metrics: dict, clips: int) -> list[str]:
    """What 04 prints of speech translation: end to end and the cascade."""
    lines = [f"{clips} spoken test captions translated from the clip: BLEU {_show(metrics, 'speech_translate/bleu')}, "
             f"chrF {_show(metrics, 'speech_translate/chrf')}"]
    if "speech_translate/cascade/bleu" in metrics:
        lines += [f"transcribed by the model, then translated as text (the cascade): BLEU "
                  f"{_show(metrics, 'speech_translate/cascade/bleu')}, chrF {_show(metrics, 'speech_translate/cascade/chrf')}",
                  f"end to end minus cascade: BLEU {_show(metrics, 'speech_translate/minus_cascade/bleu')}, "
                  f"chrF {_show(metrics, 'speech_translate/minus_cascade/chrf')}"]
    if "speech_translate/cascade_with_image/bleu" in metrics:
        lines += [f"the cascade translating with the caption's image (more than the clip holds): BLEU "
                  f"{_show(metrics, 'speech_translate/cascade_with_image/bleu')}, "
                  f"chrF {_show(metrics, 'speech_translate/cascade_with_image/chrf')}; end to end minus it: BLEU "
                  f"{_show(metrics, 'speech_translate/minus_cascade_with_image/bleu')}"]
    return lines


def _show(metrics: dict, name: str, percent: bool = False) -> str:
    scale, unit = (100, "%") if percent else (1, "")
    value, low, high = (scale * metrics[f"{name}{end}"] for end in ("", "/ci95_low", "/ci95_high"))
    return f"{value:.1f}{unit} [{low:.1f}, {high:.1f}]"


def _generate(split: TestSplit, examples: list[Example], pixels, task: str) -> list[str]:
    """The split's model's answers to ``examples`` as 04 decodes them (its batch, beams), at most
    ``task``'s token limit."""
    return generate(split.model, split.processor, examples, pixels, batch_size=split.batch_size,
                    num_beams=split.num_beams, max_new_tokens=split.limits[task], progress=False)
