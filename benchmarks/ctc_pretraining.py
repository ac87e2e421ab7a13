"""02's CTC pretraining of the audio tower alone — the step that sets how well the fused model
hears — on a run's processed data, with the augmentation policy as flags: SpecAugment's time masks
(count, longest share of the clip), vocal tract length perturbation, epochs. Prints greedy CTC WER
and the share of clips transcribed exactly, per kind of text (caption, question) and per voice
group (trained, held out), on validation and test: a research loop of minutes where the whole
series takes a quarter of an hour. One training per call: compare settings over seeds (``--seed``).

    .venv/bin/python benchmarks/ctc_pretraining.py --run reports/RUN [--epochs 80] [--time-masks 2]
        [--time-fraction 0.2] [--vtlp-warp 0] [--train-from data/processed/OTHER] [--seed 0]
        [--word-sequences 1000 --swap-share 1.0]

``--train-from`` takes the training clips from another processed folder (say one synthesised with
``speech_rate_jitter``), validation and test from the run's: the same texts and voices, evaluated on
the same clips. ``--word-sequences N`` adds N training clips of new sentences made of the training
transcripts' words (``mbmlab.data.speech.word_sequences``: each word of a drawn transcript swapped
for a random one with probability ``--swap-share``), spoken by the trained voices in turn and
cached like 01's clips; without the flag, as many as the run's 02 trained with
(``audio_ctc_word_sequences``; ``--word-sequences 0`` for none).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from mbmlab.artifacts import load_json
from mbmlab.data.collect import load_processed
from mbmlab.metrics.asr import error_rates_by
from mbmlab.models import audio
from mbmlab.training import ctc


def scores(references: list[str], hypotheses: list[str], kinds: list[str], voices: list[str],
           heldout: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(WER, CER and exact share per kind of text and voice group, and over all clips; the same
    per voice for the questions alone)."""
    frame = pd.DataFrame({"reference": references, "prediction": hypotheses, "kind": kinds, "voice": voices})
    frame["group"] = frame["kind"] + " / " + frame["voice"].map(lambda v: "held out" if v in heldout else "trained")
    groups = pd.concat([error_rates_by(frame, "group"), error_rates_by(frame.assign(group="all"), "group")])
    return groups, error_rates_by(frame[frame["kind"] == "question"], "voice")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a run folder whose 01_collect is done")
    parser.add_argument("--train-from", type=Path, help="a processed data folder to take the training clips from")
    parser.add_argument("--epochs", type=float, help="CTC epochs (default: the run's audio_ctc_epochs)")
    parser.add_argument("--time-masks", type=int, default=2, help="SpecAugment time masks per clip")
    parser.add_argument("--time-fraction", type=float, default=0.2, help="a time mask's longest share of the clip")
    parser.add_argument("--vtlp-warp", type=float, help="VTLP warp (default: the run's vtlp_warp)")
    parser.add_argument("--seed", type=int, help="default: the run's seed")
    parser.add_argument("--word-sequences", type=int,
                        help="extra training clips of new sentences made of the training transcripts' words "
                             "(default: the run's audio_ctc_word_sequences, as 02 trained)")
    parser.add_argument("--swap-share", type=float, default=1.0,
                        help="each word of such a sentence swapped for a random one with this probability")
    parser.add_argument("--word-jitter", type=float, default=0.0,
                        help="such a clip's pitch drawn from 1 ± this, its speaking rate from 1 ± half of it")
    parser.add_argument("--output", type=Path, help="folder for the checkpoints (default: a new temporary one)")
    args = parser.parse_args(argv)
    output = args.output or Path(tempfile.mkdtemp(prefix="mbmlab-ctc-pretraining-"))
    if args.time_masks < 0 or not 0.0 <= args.time_fraction <= 1.0:
        parser.error("--time-masks is a count ≥ 0 and --time-fraction a share in [0, 1]")
    dataset = load_json(args.run, "dataset.json")
    params = load_json(args.run, "params.json")
    speech = load_processed(dataset["path"]).speech
    if speech is None:
        parser.error(f"{args.run} has no speech")
    train = load_processed(args.train_from).speech["train"] if args.train_from else speech["train"]
    epochs = params["audio_ctc_epochs"] if args.epochs is None else args.epochs
    warp = params["vtlp_warp"] if args.vtlp_warp is None else args.vtlp_warp
    seed = params["seed"] if args.seed is None else args.seed
    if args.word_sequences is None:  # a run from before the parameter: none
        args.word_sequences = params.get("audio_ctc_word_sequences", 0)
    splits = {"train": train, "validation": speech["validation"], "test": speech["test"]}
    encoder, extractor = audio.audio_encoder_for(params | {"seed": seed},
                                                 [d for s in splits.values() for d in s["duration"]])
    clips = {s: ctc.Clips(*audio.log_mel(splits[s], extractor), splits[s]["transcript"]) for s in splits}
    if args.word_sequences:
        extra = ctc.word_sequence_clips(train, args.word_sequences, seed, Path(dataset["path"]).parent.parent / "cache"
                                        / "speech", extractor, args.swap_share, args.word_jitter)
        clips["train"] = clips["train"] + extra
        print(f"{args.word_sequences} word-sequence clips (swap share {args.swap_share:g}, jitter "
              f"{args.word_jitter:g}), e.g. "
              f"{extra.transcripts[:3]}")
    start = time.perf_counter()
    model, trainer, _, _ = ctc.pretrain_ctc(
        encoder, clips, output, epochs=epochs, batch_size=params["audio_ctc_batch_size"],
        learning_rate=params["audio_ctc_learning_rate"], seed=seed, augment=True, warp=warp,
        masks={"time_masks": args.time_masks, "time_fraction": args.time_fraction})
    seconds = time.perf_counter() - start
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    print(f"{len(clips['train'])} training clips, {epochs:g} epochs, seed {seed}: time masks {args.time_masks} × up to "
          f"{args.time_fraction:g} of the clip, VTLP warp {warp:g}; {seconds:.0f} s of training, "
          f"last logged loss {losses[-1] if losses else float('nan'):.6f}")
    heldout = set(params["speech_heldout_voices"])
    for split in ("validation", "test"):
        groups, questions = scores(clips[split].transcripts, ctc.transcribe(model, clips[split]),
                                   list(splits[split]["kind"]), list(splits[split]["voice"]), heldout)
        print(f"\n{split}, greedy CTC:\n{groups.round(4).to_string(index=False)}\n"
              f"{split}, the questions per voice:\n{questions.round(4).to_string(index=False)}")


if __name__ == "__main__":
    main()
