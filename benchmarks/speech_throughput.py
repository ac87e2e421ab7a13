"""Speech synthesis throughput: clips/s for a first run (every clip synthesised) and for the
cached rerun (every clip read from the cache), in one process, into a fresh temporary cache;
medians over --repeats (each repeat with its own empty cache).

    .venv/bin/python benchmarks/speech_throughput.py [--clips 300] [--workers N] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from mbmlab.data import speech
from mbmlab.data.scenes import NUMBERS, SHAPES
from mbmlab.data.easyvqa import COLOURS


def texts(n: int) -> list[str]:
    """Distinct captions and questions like the ones the series speaks."""
    pool = [f"a {size} {c} {s}" for size in ("small", "large") for c in COLOURS for s in SHAPES]
    pool += [f"what color is the {s}?" for s in SHAPES] + [f"is there a {c} {s}?" for c in COLOURS for s in SHAPES]
    pool += [f"how many shapes are there? {w}" for w in NUMBERS.values()]
    return [pool[i % len(pool)] + ("" if i < len(pool) else f" number {i // len(pool)}") for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    voices = list(speech.VOICES)
    utterances = [speech.Utterance(t, voices[i % len(voices)]) for i, t in enumerate(texts(args.clips))]
    runs = {"first run": [], "cached rerun": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            for label in runs:
                cache = speech.SpeechCache(Path(tmp))
                start = time.perf_counter()
                clips = speech.synthesize_all(utterances, cache, workers=args.workers, progress=False)
                seconds = time.perf_counter() - start
                audio_seconds = sum((len(c) - 44) / 2 / speech.SAMPLE_RATE for c in clips)
                runs[label].append((cache.misses, cache.hits, seconds, audio_seconds))
    print(f"{args.clips} clips, {len(voices)} voices, {args.workers} workers, {os.cpu_count()} CPUs, "
          f"median of {args.repeats} repeats")
    print(f"{'':>13} {'made':>5} {'cached':>6} {'seconds':>8} {'clips/s':>9} {'audio s/s':>9}")
    rates = {}
    for label, results in runs.items():
        seconds = statistics.median(r[2] for r in results)
        made, cached, _, audio_seconds = results[0]
        rates[label] = args.clips / seconds
        print(f"{label:>13} {made:5d} {cached:6d} {seconds:8.2f} {rates[label]:9.1f} {audio_seconds / seconds:9.1f}")
    print(f"cached rerun / first run speed: {rates['cached rerun'] / rates['first run']:.0f}x")


if __name__ == "__main__":
    main()
