"""A real labelled image set as a user folder: scikit-learn's handwritten digits (UCI "Optical
Recognition of Handwritten Digits", 1,797 greyscale 8×8 images by 43 writers; Alpaydin &
Kaynak 1998), which the scikit-learn wheel ships, so nothing is downloaded.

``write_folder`` lays them out the way ``sources=["user"]`` reads any folder (Hugging Face
imagefolder: PNG files and a ``metadata.csv``), one closed-set question per image — "what digit
is this?" → "seven" — and a caption, so the default series trains and evaluates on them:
``python -m mbmlab.data.digits data/digits`` then
``mbmlab run --set 'sources=["user"]' --set user_dir=data/digits``.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
QUESTION = "what digit is this?"


def write_folder(out: Path, scale: int = 4, limit: int = 0) -> int:
    """PNG files (8×8 scaled ``scale``× with nearest-neighbour, RGB, ink dark on white) and
    ``metadata.csv`` (file_name, question, answer, text) under ``out``; returns the image count.
    Refuses a folder that already has a ``metadata.csv`` (nothing is overwritten)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    out = Path(out)
    if (out / "metadata.csv").exists():
        raise FileExistsError(f"{out / 'metadata.csv'} exists; choose an empty folder")
    digits = load_digits()
    images, labels = digits.images, digits.target
    if limit:
        images, labels = images[:limit], labels[:limit]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "metadata.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file_name", "question", "answer", "text"])
        for i, (pixels, label) in enumerate(zip(images, labels)):
            grey = (255 - pixels * 255 / 16).round().astype(np.uint8)  # values 0..16, ink → dark
            picture = Image.fromarray(grey, mode="L").resize((8 * scale, 8 * scale), Image.Resampling.NEAREST)
            name = f"digit-{i:04d}.png"
            picture.convert("RGB").save(out / name)
            writer.writerow([name, QUESTION, NAMES[label], f"a handwritten {NAMES[label]}"])
    return len(labels)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m mbmlab.data.digits OUT_FOLDER")
    print(f"{write_folder(Path(sys.argv[1]))} digit images written to {sys.argv[1]}")
