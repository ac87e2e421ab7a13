"""Bring your own data: an ``imagefolder``/``audiofolder`` directory, or a Hugging Face dataset.

Folder layout (the Hugging Face conventions): files plus a ``metadata.csv`` whose
``file_name`` column names each file relative to the folder; either at the top (we then split
by image, seeded) or one per split folder (``train/``, ``validation/``, ``test/``), which we keep.
Several rows may name the same image (one question each); they become one image record.
Image files become image records, audio files audio records (decided by the file extension).

We read ``metadata.csv`` line by line ourselves, rather than with ``load_dataset("imagefolder")``,
so that one bad row (not UTF-8, a missing file) is a logged drop instead of a failed load.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from .clean import DropReport

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a"}
SPLIT_DIRS = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
              "test": "test"}


class UserDataError(ValueError):
    """The folder or dataset cannot be read at all (as opposed to one bad record)."""


@dataclass(frozen=True)
class ColumnMap:
    image: str = "image"
    text: str = "text"
    audio: str = "audio"
    question: str = "question"
    answer: str = "answer"
    translation: str = "translation"  # the caption in the run's target_language


def read_metadata(path: Path, drops: DropReport, source: str = "user") -> list[dict]:
    """Rows of ``metadata.csv``; a line that is not UTF-8 is dropped with its line number."""
    raw = path.read_bytes()
    lines = []
    for number, line in enumerate(raw.splitlines(), start=1):
        try:
            lines.append(line.decode("utf-8-sig" if number == 1 else "utf-8"))
        except UnicodeDecodeError as err:
            drops.add(source, f"{path.name}:{number}", "undecodable text",
                      f"line {number} is not UTF-8 ({err.reason} at byte {err.start})")
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    if not reader.fieldnames or "file_name" not in reader.fieldnames:
        raise UserDataError(f"{path} needs a 'file_name' column (Hugging Face imagefolder convention); "
                            f"found columns {reader.fieldnames}")
    return list(reader)


def _split_folders(root: Path) -> dict[str, Path]:
    found = {}
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name in SPLIT_DIRS and (child / "metadata.csv").exists():
            found[SPLIT_DIRS[child.name]] = child
    return found


def folder_records(root: str | Path, columns: ColumnMap, drops: DropReport) -> dict[str, dict[str, list[dict]]]:
    """``{"images"|"audio": {split or "": [record, ...]}}``; split "" means "split it for me"."""
    root = Path(root)
    if not root.is_dir():
        raise UserDataError(f"user_dir {str(root)!r} is not a folder")
    folders = _split_folders(root) or ({"": root} if (root / "metadata.csv").exists() else {})
    if not folders:
        raise UserDataError(f"{root} has no metadata.csv (at the top or in train/, validation/, test/)")
    out: dict[str, dict[str, list[dict]]] = {"images": {}, "audio": {}}
    for split, folder in folders.items():
        images: dict[str, dict] = {}
        audio: list[dict] = []
        for number, row in enumerate(read_metadata(folder / "metadata.csv", drops), start=2):
            name = (row.get("file_name") or "").strip()
            rid = f"user-{split or 'all'}-{name or f'line{number}'}"
            path = folder / name
            suffix = path.suffix.lower()
            if not name or suffix not in IMAGE_EXTENSIONS | AUDIO_EXTENSIONS:
                drops.add("user", rid, "unsupported file", f"line {number}: {name!r} is not an image or audio file")
                continue
            data = path.read_bytes() if path.is_file() else None
            missing = f"line {number}: {name} does not exist"
            if suffix in AUDIO_EXTENSIONS:
                audio.append({"clip_id": rid, "image_id": "", "source": "user", "audio": data,
                              "missing_detail": missing, "transcript": row.get(columns.text),
                              "kind": "transcript", "answer": "", "question_type": "", "engine": "",
                              "voice": row.get("voice", ""), "accent": row.get("accent", ""),
                              "gender": row.get("gender", ""), "rate": 1.0, "pitch": 1.0})
                continue
            record = images.setdefault(name, {
                "image_id": rid, "source": "user", "image": data, "missing_detail": missing,
                "caption": "", "colour": "", "shape": "", "objects": [],
                "questions": [], "answers": [], "question_types": []})
            _merge_text(record, row.get(columns.text), row.get(columns.question), row.get(columns.answer),
                        row.get(columns.translation))
        out["images"][split] = list(images.values())
        out["audio"][split] = audio
    return out


def _merge_text(record: dict, caption, question, answer, translation=None) -> None:
    if caption and not record["caption"]:
        record["caption"] = caption
    if translation and not record.get("translation"):
        record["translation"] = translation
    if question or answer:  # the cleaner drops the pair if either side is empty
        record["questions"].append(question or "")
        record["answers"].append(answer or "")
        record["question_types"].append("user")


def hub_records(name: str, columns: ColumnMap, drops: DropReport) -> dict[str, dict[str, list[dict]]]:
    """The same records from a Hugging Face dataset (a hub name, or a local path ``load_dataset``
    accepts). Needs network access for a hub name; the default run never calls it."""
    import datasets

    loaded = datasets.load_dataset(name)
    if not isinstance(loaded, datasets.DatasetDict):
        loaded = datasets.DatasetDict({"train": loaded})
    if set(loaded) - set(SPLIT_DIRS):
        raise UserDataError(f"{name}: splits {sorted(set(loaded) - set(SPLIT_DIRS))} are not train/validation/test")
    out: dict[str, dict[str, list[dict]]] = {"images": {}, "audio": {}}
    for split_name, split in loaded.items():
        # A dataset with a train split only is split by image for you, as a folder without split folders is.
        split_key = "" if set(loaded) == {"train"} else SPLIT_DIRS[split_name]
        for column, feature in ((columns.image, datasets.Image(decode=False)),
                                (columns.audio, datasets.Audio(decode=False))):
            if column in split.column_names:
                split = split.cast_column(column, feature)
        has_image, has_audio = columns.image in split.column_names, columns.audio in split.column_names
        if not has_image and not has_audio:
            raise UserDataError(f"{name}[{split_name}] has neither {columns.image!r} nor {columns.audio!r}; "
                                f"columns: {split.column_names} (set image_column / audio_column)")
        images, audio = [], []
        for i, row in enumerate(split):
            rid = f"user-{split_name}-{i}"
            if has_image:
                image = row[columns.image] or {}
                record = {"image_id": rid, "source": "user", "image": _file_bytes(image),
                          "caption": "", "colour": "", "shape": "", "objects": [],
                          "questions": [], "answers": [], "question_types": []}
                _merge_text(record, row.get(columns.text), row.get(columns.question), row.get(columns.answer),
                            row.get(columns.translation))
                images.append(record)
            if has_audio:
                clip = row[columns.audio] or {}
                audio.append({"clip_id": rid, "image_id": rid if has_image else "", "source": "user",
                              "audio": _file_bytes(clip), "transcript": row.get(columns.text),
                              "kind": "transcript", "answer": "", "question_type": "", "engine": "",
                              "voice": "", "accent": "", "gender": "", "rate": 1.0, "pitch": 1.0})
        out["images"][split_key] = images
        out["audio"][split_key] = audio
    return out


def _file_bytes(value: dict) -> bytes | None:
    if value.get("bytes"):
        return value["bytes"]
    if value.get("path") and Path(value["path"]).is_file():
        return Path(value["path"]).read_bytes()
    return None

