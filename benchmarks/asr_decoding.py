"""How a run's fused model transcribes with the CTC head's share of the score (``asr_ctc_weight``,
joint CTC–attention decoding, ``mbmlab.metrics.joint_decoding``) at several weights, on one split:
WER and CER with intervals (resampled by clip), for the voices trained on and the held-out ones
apart, and the seconds each weight took. With ``--spoken``, also the split's spoken questions
through the cascade (each transcribed at that weight, then asked typed about its image) beside the
same questions typed, with the paired difference (images resampled), and how many of the wrong
transcripts the CTC head itself prefers to the reference (model errors) or not (search errors). Choose the weight on
``validation``; score the chosen one on ``test`` once (04 does, with ``asr_ctc_weight``).

    .venv/bin/python benchmarks/asr_decoding.py --run reports/RUN --split validation --weights 0,0.1,0.3,0.5,0.7,0.9
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from mbmlab import models  # noqa: F401  (registers the family)
from mbmlab.artifacts import check_model_folder, load_json
from mbmlab.data.collect import load_processed
from mbmlab.data.tasks import task_examples
from mbmlab.metrics import intervals
from mbmlab.metrics.generate import generate, max_target_tokens
from mbmlab.metrics.joint_decoding import search_or_model_errors
from mbmlab.models.ctc import frame_lengths
from mbmlab.training.fused import split_inputs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a run folder whose 03_fuse is done")
    parser.add_argument("--split", choices=("validation", "test"), default="validation")
    parser.add_argument("--weights", default="0,0.1,0.3,0.5,0.7,0.9", help="comma-separated CTC weights in [0, 1]")
    parser.add_argument("--clips", type=int, default=0, help="the split's first N clips (0: all)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--spoken", action="store_true", help="also the spoken questions through the cascade")
    args = parser.parse_args(argv)
    weights = [float(w) for w in args.weights.split(",")]
    if any(not 0.0 <= w <= 1.0 for w in weights):
        parser.error(f"weights are shares in [0, 1]: {args.weights}")
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processed = load_processed(load_json(args.run, "dataset.json")["path"])
    if processed.speech is None:
        parser.error(f"{args.run} has no speech data")
    model = AutoModelForImageTextToText.from_pretrained(check_model_folder(args.run / "fused", "03_fuse")).eval()
    processor = AutoProcessor.from_pretrained(args.run / "fused")
    if getattr(model.model, "audio_ctc_head", None) is None:
        parser.error("this model has no CTC head (02 pretrained none: audio_ctc_epochs = 0), so every weight is the GPT alone")
    _, features, masks = split_inputs(processed, processor, (args.split,), ("audio",), with_masks=True)
    clips = processed.speech[args.split]
    examples = task_examples(None, clips, ["asr"])[:args.clips or None]
    limit = max_target_tokens(processor, [e.target for e in task_examples(None, processed.speech["train"], ["asr"])])
    trained = set(processed.speech["train"]["voice"])
    held_out = torch.tensor([clips[e.clip]["voice"] not in trained for e in examples])
    print(f"{args.run.name}: {len(examples)} {args.split} clips ({int(held_out.sum())} of held-out voices), "
          f"{torch.get_num_threads()} threads")
    for weight in weights:
        start = time.perf_counter()
        heard = generate(model, processor, examples, None, features[args.split], batch_size=args.batch_size,
                         max_new_tokens=limit, frame_mask=masks[args.split], ctc_weight=weight, progress=False)
        seconds = time.perf_counter() - start
        line = [f"weight {weight:.2f}"]
        for name, rows in (("all", ~torch.zeros_like(held_out)), ("seen voices", ~held_out), ("held-out voices", held_out)):
            chosen = rows.nonzero().flatten().tolist()
            if not chosen:
                continue
            rates = intervals.error_rate_metrics([examples[i].target for i in chosen], [heard[i] for i in chosen])
            line.append(f"{name}: WER {rates['wer']:.4f} [{rates['wer/ci95_low']:.4f}, {rates['wer/ci95_high']:.4f}] "
                        f"CER {rates['cer']:.4f}")
        print(" | ".join(line + [f"{seconds:.1f} s"]), flush=True)
        if args.spoken:
            print("  " + cascade(model, processor, processed, args.split, features, masks, limit, weight, args.batch_size),
                  flush=True)


def cascade(model, processor, processed, split: str, features, masks, limit: int, weight: float, batch_size: int) -> str:
    """The split's spoken questions transcribed at ``weight`` and asked typed, beside the same
    questions typed (exact match, and the paired difference with images resampled)."""
    from mbmlab.data.tasks import Example
    from mbmlab.metrics.vqa import answers_correct

    if processed.images is None:
        return "no images: no spoken questions to ask"
    pixels = split_inputs(processed, processor, (split,), ("image",))[0][split]
    asked = task_examples(processed.images[split], processed.speech[split], ["spoken_vqa"])
    heard = generate(model, processor, [Example("asr", None, e.clip, "", "") for e in asked], None, features[split],
                     batch_size=batch_size, max_new_tokens=limit, frame_mask=masks[split], ctc_weight=weight,
                     progress=False)
    answers = {name: generate(model, processor, [Example("vqa", e.image, None, q, e.target) for e, q in zip(asked, questions)],
                              pixels, batch_size=batch_size, max_new_tokens=8, progress=False)
               for name, questions in (("cascade", heard), ("typed", [e.question for e in asked]))}
    right = {name: answers_correct(a, [e.target for e in asked]) for name, a in answers.items()}
    images = [processed.images[split][e.image]["image_id"] for e in asked]
    d = intervals.paired_difference(right["cascade"], right["typed"], images, "d")
    clips = [e.clip for e in asked]
    with torch.no_grad():
        log_probs = model.model.audio_ctc_head(model.model.get_audio_frames(features[split][clips]))
    errors = search_or_model_errors(log_probs, frame_lengths(masks[split][clips], log_probs.shape[1]),
                                    [e.question for e in asked], heard, model.model.audio_ctc_head.characters)
    return (f"{len(asked)} spoken questions: cascade {right['cascade'].mean():.4f}, typed {right['typed'].mean():.4f}, "
            f"cascade − typed {d['d']:+.4f} [{d['d/ci95_low']:+.4f}, {d['d/ci95_high']:+.4f}]; {errors['wrong']} "
            f"transcribed wrong: the CTC head prefers the reference in {errors['search']} (search errors), what "
            f"was heard in {errors['model']} (model errors)")


if __name__ == "__main__":
    main()
