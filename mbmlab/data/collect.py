"""Build the processed dataset: records → cleaned rows → image-disjoint splits → DatasetDict."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from . import easyvqa

log = logging.getLogger(__name__)

FEATURES = datasets.Features({
    "image_id": datasets.Value("string"),
    "source": datasets.Value("string"),
    "image": datasets.Image(),
    "caption": datasets.Value("string"),  # "" when the QA pairs do not determine it
    "colour": datasets.Value("string"),
    "shape": datasets.Value("string"),
    "questions": datasets.List(datasets.Value("string")),
    "answers": datasets.List(datasets.Value("string")),
    "question_types": datasets.List(datasets.Value("string")),
})
SPLITS = ("train", "validation", "test")


class EmptySourceError(RuntimeError):
    """Cleaning dropped every record of a source."""


@dataclass
class DropReport:
    """Every record or part of a record that cleaning removed, with the reason."""
    entries: list[dict] = field(default_factory=list)

    def add(self, source: str, record_id: str, reason: str, detail: str = "", scope: str = "record") -> None:
        self.entries.append({"source": source, "id": record_id, "reason": reason,
                             "detail": detail, "scope": scope})
        log.info("dropped %s %s (%s): %s %s", scope, record_id, source, reason, detail)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(f"{e['scope']}: {e['reason']}" for e in self.entries).items()))

    def examples(self, per_reason: int = 3) -> list[dict]:
        seen: Counter = Counter()
        out = []
        for entry in self.entries:
            key = (entry["scope"], entry["reason"])
            if seen[key] < per_reason:
                seen[key] += 1
                out.append(entry)
        return out

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"counts": self.counts(), "entries": self.entries}, indent=1))


def clean_easyvqa_record(record: dict, drops: DropReport) -> dict | None:
    """One image's row, or None (with the reason in ``drops``)."""
    rid = record["image_id"]
    if record["image_path"] is None:
        drops.add("easyvqa", rid, "missing image", "questions refer to an image file that is absent")
        return None
    try:
        png = easyvqa.load_image_bytes(record["image_path"])
    except ValueError as err:
        drops.add("easyvqa", rid, "undecodable image", str(err))
        return None
    if not record["questions"]:
        drops.add("easyvqa", rid, "no questions", "image has no QA pairs")
        return None
    try:
        colour, shape = easyvqa.derive_attributes(record["questions"], record["answers"])
        caption = easyvqa.caption_for(colour, shape)
    except easyvqa.CaptionError as err:
        # The image stays for VQA; only its caption (and attributes) are missing.
        drops.add("easyvqa", rid, "caption undetermined by QA pairs", str(err), scope="caption")
        colour = shape = caption = ""
    return {
        "image_id": rid, "source": "easyvqa", "image": {"bytes": png, "path": None},
        "caption": caption, "colour": colour, "shape": shape,
        "questions": record["questions"], "answers": record["answers"],
        "question_types": [easyvqa.question_type(a) for a in record["answers"]],
    }


def split_by_image(train_rows: list[dict], test_rows: list[dict], val_fraction: float, seed: int,
                   max_train_images: int = 0, max_test_images: int = 0) -> dict[str, list[dict]]:
    """Official test stays test; training images are shuffled (seeded) into train/validation.

    Rows are whole images, so no image can land in two splits.
    """
    rng = random.Random(seed)
    train_rows = list(train_rows)
    rng.shuffle(train_rows)
    if max_train_images:
        train_rows = train_rows[:max_train_images]
    test_rows = list(test_rows)
    if max_test_images:
        rng.shuffle(test_rows)
        test_rows = sorted(test_rows[:max_test_images], key=lambda r: r["image_id"])
    n_val = max(1, round(len(train_rows) * val_fraction))
    return {"train": train_rows[n_val:], "validation": train_rows[:n_val], "test": test_rows}


def dataset_fingerprint(params: dict) -> str:
    keys = ("source", "seed", "val_fraction", "max_train_images", "max_test_images")
    blob = json.dumps({k: params[k] for k in keys}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def build_easyvqa(params: dict, progress: bool = True) -> tuple[datasets.DatasetDict, DropReport]:
    """Select images (seeded, by image), then clean each selected record."""
    from tqdm import tqdm  # text bars: readable in JupyterLab and in the rendered HTML

    drops = DropReport()
    raw = {split: easyvqa.raw_records(split) for split in ("train", "test")}
    selected = split_by_image(raw["train"], raw["test"], params["val_fraction"], params["seed"],
                              params["max_train_images"], params["max_test_images"])
    splits = {}
    for name in SPLITS:
        rows = [row for r in tqdm(selected[name], desc=f"easy-VQA {name}", disable=not progress)
                if (row := clean_easyvqa_record(r, drops)) is not None]
        if not rows:
            raise EmptySourceError(f"easy-VQA {name}: every record was dropped; see the drop report")
        splits[name] = datasets.Dataset.from_list(rows, features=FEATURES)
    return datasets.DatasetDict(splits), drops


def build_dataset(params: dict, data_root: Path, progress: bool = True) -> tuple[Path, datasets.DatasetDict, DropReport]:
    """Build (or reuse, if the same parameters built it before) ``data/processed/<name>``.

    The folder name carries a hash of the parameters that shape the data, so a run with
    other parameters never overwrites this one.
    """
    name = f"{params['source']}-{dataset_fingerprint(params)}"
    out = Path(data_root) / "processed" / name
    drops_path = out / "drop_report.json"
    if (out / "dataset_dict.json").exists() and drops_path.exists():
        saved = json.loads(drops_path.read_text())
        return out, datasets.load_from_disk(str(out)), DropReport(saved["entries"])
    if params["source"] != "easyvqa":
        raise ValueError(f"unknown source {params['source']!r}")
    dataset, drops = build_easyvqa(params, progress=progress)
    # Each process writes its own folder and renames it into place, so the dataset appears
    # whole or not at all, and two runs building the same data at once (a sweep) cannot collide.
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")
    if tmp.exists():  # left by an interrupted build of a process with the same id
        shutil.rmtree(tmp)
    dataset.save_to_disk(str(tmp))
    drops.save(tmp / "drop_report.json")
    try:
        tmp.rename(out)
    except OSError:
        if not (out / "dataset_dict.json").exists():
            raise
        shutil.rmtree(tmp)  # another run finished the same data first; theirs is identical
        log.info("dataset %s was built concurrently by another run; using that copy", out.name)
    return out, datasets.load_from_disk(str(out)), drops
