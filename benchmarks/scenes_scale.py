"""Build a scenes-only dataset of --images images through the same code as 01_collect (render,
clean, deduplicate, split, save) into a temporary folder; print time, images/s, peak memory and
size on disk.

    .venv/bin/python benchmarks/scenes_scale.py [--images 100000]
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from mbmlab.lab import params as P
from mbmlab.data.collect import build_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    args = parser.parse_args()
    n_test = args.images // 10
    values = P.resolve("default", {"sources": ["scenes"], "scenes_images": args.images - n_test,
                                   "scenes_test_images": n_test, "bias_pairs": ["circle:red"]})
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        processed = build_dataset(values, Path(tmp), progress=False)
        seconds = time.perf_counter() - start
        size = sum(p.stat().st_size for p in processed.path.rglob("*") if p.is_file())
        kept = sum(len(s) for s in processed.images.values())
        drops = processed.drops.counts()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.images} scenes requested, {kept} kept; drops: {drops}")
    print(f"{seconds:.1f} s, {args.images / seconds:.0f} images/s, peak RSS {peak:.0f} MiB, "
          f"{size / 2**20:.0f} MiB on disk")


if __name__ == "__main__":
    main()
