"""Build the processed dataset: sources → records → cleaning → image-disjoint splits → DatasetDicts.

Output, under ``data/processed/<sources>-<hash of the parameters>/``:

- ``images/``: a ``DatasetDict`` (train/validation/test), one row per image with its caption and
  all its QA pairs — rows are whole images, so no image can sit in two splits;
- ``speech/``: a ``DatasetDict`` of spoken clips, each in the split of the image it talks about;
- ``drop_report.json``: every dropped record or part, and every change made to a kept one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import datasets

from ..names import GRAMMAR_LANGUAGES
from . import attributes, chinese, easyvqa, scenes, speech, user
from .clean import Cleaner, DropReport, EmptySourceError
from .sources import check_sources

log = logging.getLogger(__name__)

DATA_VERSION = 2  # the folder's layout; the code that builds the data is hashed too (``data_code``)
SPLITS = ("train", "validation", "test")

OBJECT = {"shape": datasets.Value("string"), "colour": datasets.Value("string"),
          "size": datasets.Value("string"), "x": datasets.Value("float32"), "y": datasets.Value("float32")}
FEATURES = datasets.Features({
    "image_id": datasets.Value("string"),
    "source": datasets.Value("string"),
    "image": datasets.Image(),
    "caption": datasets.Value("string"),  # "" when the source gives none
    "colour": datasets.Value("string"),  # of the single object; "" for several objects or unknown
    "shape": datasets.Value("string"),
    "objects": datasets.List(OBJECT),  # every object with its attributes, when the source knows them
    "questions": datasets.List(datasets.Value("string")),
    "answers": datasets.List(datasets.Value("string")),
    "question_types": datasets.List(datasets.Value("string")),
    # into target_language; "" where the source gives none (mbmlab.data.chinese for the drawn sources)
    "translation": datasets.Value("string"),
    "translated_questions": datasets.List(datasets.Value("string")),
    "translated_answers": datasets.List(datasets.Value("string")),
    "language": datasets.Value("string"),  # of the translations (target_language); "" where there are none
})
SPEECH_FEATURES = datasets.Features({
    "clip_id": datasets.Value("string"),
    "image_id": datasets.Value("string"),  # the image the clip talks about; "" for audio-only data
    "source": datasets.Value("string"),
    "audio": datasets.Audio(sampling_rate=speech.SAMPLE_RATE),
    "transcript": datasets.Value("string"),
    "kind": datasets.Value("string"),  # caption / question / transcript
    "answer": datasets.Value("string"),
    "question_type": datasets.Value("string"),
    "engine": datasets.Value("string"),
    "voice": datasets.Value("string"),
    "accent": datasets.Value("string"),
    "gender": datasets.Value("string"),
    "rate": datasets.Value("float32"),
    "pitch": datasets.Value("float32"),
    "duration": datasets.Value("float32"),
})


@dataclass
class Processed:
    path: Path
    images: datasets.DatasetDict | None
    speech: datasets.DatasetDict | None
    drops: DropReport


# ---------------------------------------------------------------- splitting

def split_by_image(train_rows: list[dict], test_rows: list[dict], val_fraction: float, seed: int,
                   max_train_images: int = 0, max_test_images: int = 0) -> dict[str, list[dict]]:
    """Official test stays test; training images are shuffled (seeded) into train/validation."""
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


def split_three_ways(rows: list[dict], fraction: float, seed: int, salt: str) -> dict[str, list[dict]]:
    """Seeded train/validation/test split of unsplit rows; validation and test get ``fraction`` each."""
    rows = list(rows)
    random.Random(f"{salt}/{seed}").shuffle(rows)
    n = max(1, round(len(rows) * fraction)) if len(rows) >= 3 else 0
    return {"train": rows[2 * n:], "validation": rows[:n], "test": rows[n:2 * n]}


# ---------------------------------------------------------------- sources → records

def easyvqa_records(params: dict) -> dict[str, list[dict]]:
    raw = {split: easyvqa.raw_records(split) for split in ("train", "test")}
    selected = split_by_image(raw["train"], raw["test"], params["val_fraction"], params["seed"],
                              params["max_train_images"], params["max_test_images"])
    return {split: [easyvqa_record(r) for r in rows] for split, rows in selected.items()}


def easyvqa_record(raw: dict) -> dict:
    """A raw easy-VQA record with its image bytes (None when missing) and derived caption."""
    path = raw["image_path"]
    record = {"image_id": raw["image_id"], "source": "easyvqa",
              "image": Path(path).read_bytes() if path and Path(path).is_file() else None,
              "missing_detail": "questions refer to an image file that is absent",
              "caption": "", "colour": "", "shape": "", "objects": [],
              "questions": raw["questions"], "answers": raw["answers"],
              "question_types": [easyvqa.question_type(a) for a in raw["answers"]]}
    try:
        colour, shape = easyvqa.derive_attributes(raw["questions"], raw["answers"])
    except easyvqa.CaptionError as err:
        record["caption_error"] = str(err)
    else:
        record.update(caption=easyvqa.caption_for(colour, shape), colour=colour, shape=shape,
                      objects=[{"shape": shape, "colour": colour, "size": "", "x": -1.0, "y": -1.0}])
    return record


def scenes_records(params: dict) -> dict[str, list[dict]]:
    bias = attributes.parse_bias_pairs(params["bias_pairs"])
    n_val = round(params["scenes_images"] * params["val_fraction"])
    counts = {"train": params["scenes_images"] - n_val, "validation": n_val, "test": params["scenes_test_images"]}
    return {split: [scenes.scene_record(params["seed"], split, i, params["scene_image_size"], bias,
                                        params["bias_strength"]) for i in range(n)]
            for split, n in counts.items()}


def user_records(params: dict, drops: DropReport) -> dict[str, dict[str, list[dict]]]:
    columns = user.ColumnMap(params["image_column"], params["text_column"], params["audio_column"],
                             params["question_column"], params["answer_column"], params["translation_column"])
    if params["user_dir"]:
        return user.folder_records(params["user_dir"], columns, drops)
    return user.hub_records(params["user_hub"], columns, drops)


def add_translations(source: str, rows: list[dict], drops: DropReport, language: str = "zh") -> None:
    """Each cleaned row's caption, questions and answers in the target language, in place.

    The drawn sources' text goes through their grammar (``mbmlab.data.chinese``); a text outside
    it is left untranslated ("") with a logged drop of scope ``translation``. A user's rows keep
    the translation their ``translation_column`` gave (cleaned with the caption) and have no
    translated questions. ``language`` (target_language) is recorded where a row has a translation."""
    for row in rows:
        _translate_row(source, row, drops)
        row["language"] = language if row["translation"] or any(row["translated_questions"]) else ""


def _translate_row(source: str, row: dict, drops: DropReport) -> None:
    n = len(row["questions"])
    row.setdefault("translation", "")
    row["translated_questions"], row["translated_answers"] = [""] * n, [""] * n
    if source not in GRAMMAR_LANGUAGES:
        return
    try:
        row["translation"] = chinese.caption(row["caption"]) if row["caption"] else ""
    except chinese.Untranslatable as err:
        drops.add(source, row["image_id"], "outside the translation grammar", str(err), scope="translation")
    for i, (q, a) in enumerate(zip(row["questions"], row["answers"], strict=True)):
        try:
            row["translated_questions"][i], row["translated_answers"][i] = chinese.question(q), chinese.answer(a)
        except chinese.Untranslatable as err:
            drops.add(source, f"{row['image_id']}#q{i}", "outside the translation grammar", str(err),
                      scope="translation")


# ---------------------------------------------------------------- the build

def clean_images(source: str, by_split: dict[str, list[dict]], cleaner: Cleaner, progress: bool) -> dict[str, list[dict]]:
    from tqdm import tqdm  # text bars: readable in JupyterLab and in the rendered HTML

    out, total = {}, 0
    for split in by_split:
        rows = []
        for record in tqdm(by_split[split], desc=f"{source} {split or 'all'}", disable=not progress):
            total += 1
            caption_error = record.pop("caption_error", None)
            row = cleaner.image_record(record)
            if row is not None:
                if caption_error:  # easy-VQA: the image stays for VQA, only its caption is missing
                    cleaner.drops.add(source, row["image_id"], "caption undetermined by QA pairs",
                                      caption_error, scope="caption")
                rows.append(row)
        out[split] = rows
    if total and not any(out.values()):
        raise EmptySourceError(f"{source}: cleaning dropped every one of its {total} records; see the drop report")
    if not total:
        raise EmptySourceError(f"{source}: the source produced no records")
    return out


def clean_clips(source: str, by_split: dict[str, list[dict]], cleaner: Cleaner) -> dict[str, list[dict]]:
    out = {split: [row for r in rows if (row := cleaner.audio_record(r)) is not None]
           for split, rows in by_split.items()}
    total = sum(len(v) for v in by_split.values())
    if not any(out.values()):
        raise EmptySourceError(f"{source}: cleaning dropped every one of its {total} clips; see the drop report")
    return out


def by_image(cleaned: dict[str, list[dict]], params: dict, salt: str) -> dict[str, list[dict]]:
    """Rows keyed by split; rows under "" (user data without split folders) are split here, after
    cleaning, so that drops cannot empty a split, seeded and by image (audio-only data by clip)."""
    out = {split: list(cleaned.get(split, [])) for split in SPLITS}
    if "" in cleaned:
        for split, rows in split_three_ways(cleaned[""], params["val_fraction"], params["seed"], salt).items():
            out[split] += rows
    return out


def build(params: dict, data_root: Path, progress: bool = True) -> dict:
    """All sources, cleaned: ``{"images": {split: rows}, "speech": {split: rows}, "drops": DropReport}``."""
    check_sources(params)  # the same rules `mbmlab run` applies before a run starts (mbmlab.data.sources)
    drops = DropReport()
    cleaner = Cleaner(drops, params["min_image_size"], params["min_audio_seconds"],
                      params["max_audio_seconds"], params["silence_dbfs"])
    images = {split: [] for split in SPLITS}
    clips = {split: [] for split in SPLITS}
    for source in params["sources"]:
        if source == "easyvqa":
            found = {"images": easyvqa_records(params)}
        elif source == "scenes":
            found = {"images": scenes_records(params)}
        elif source == "user":
            found = user_records(params, drops)
        else:
            continue
        if any(found.get("images", {}).values()):
            cleaned = clean_images(source, found["images"], cleaner, progress)
            for rows in cleaned.values():
                add_translations(source, rows, drops, params["target_language"])
            for split, rows in by_image(cleaned, params, f"{source}-images").items():
                images[split] += rows
        if any(found.get("audio", {}).values()):
            cleaned = clean_clips(source, found["audio"], cleaner)
            split_of = {r["image_id"]: split for split, rows in images.items() for r in rows}
            if "" in cleaned:  # a clip of an image goes where its image went; only the rest is split
                for row in [r for r in cleaned[""] if r["image_id"] in split_of]:
                    cleaned.setdefault(split_of[row["image_id"]], []).append(row)
                cleaned[""] = [r for r in cleaned[""] if r["image_id"] not in split_of]
            for split, rows in by_image(cleaned, params, f"{source}-audio").items():
                clips[split] += rows
    if "speech" in params["sources"]:
        plan = speech.SpeechPlan(tuple(params["speech_voices"]), params["speech_per_image"],
                                 params["speech_max_clips"], params["speech_rate_jitter"],
                                 params["speech_pitch_jitter"], params["speech_noise_snr"],
                                 tuple(params["speech_heldout_voices"]))
        planned = speech.plan_clips(images, plan, params["seed"])
        cache = speech.SpeechCache(Path(data_root) / "cache" / "speech")
        spoken = speech.speak(planned, plan, cache, params["seed"], progress=progress)
        log.info("speech: %d clips synthesised, %d from the cache", cache.misses, cache.hits)
        by_split = {split: [c for c in spoken if c["split"] == split] for split in SPLITS}
        for rows in by_split.values():
            for row in rows:
                del row["split"]
        for split, rows in clean_clips("speech", by_split, cleaner).items():
            clips[split] += rows
    return {"images": images, "speech": clips, "drops": drops}


def data_code(folder: Path = Path(__file__).parent) -> str:
    """A hash of the ``mbmlab.data`` package's source files and of ``mbmlab.names`` beside it (the
    sources, languages and grammar languages the build reads): the same parameters built by other
    code (a changed speech plan, say) get another folder, never an old build."""
    digest = hashlib.sha256()
    names = Path(folder).parent / "names.py"
    for path in sorted(Path(folder).glob("*.py")) + ([names] if names.is_file() else []):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def dataset_name(params: dict) -> str:
    """``<sources>-<hash>``: the hash covers every parameter given (01_collect's, as its notebook
    declares them: ``mbmlab.lab.params.for_notebook("01_collect", values)``) and the code that
    builds the data (``data_code``)."""
    shaping = dict(params, data_code=data_code())
    if "user" in params["sources"] and params["user_dir"]:
        folder = Path(params["user_dir"])  # the folder's metadata files, so edited data gets a new name
        shaping["user_metadata"] = sorted(
            (str(p.relative_to(folder)), hashlib.sha256(p.read_bytes()).hexdigest())
            for p in folder.rglob("metadata.csv"))
    blob = json.dumps({"version": DATA_VERSION, **shaping}, sort_keys=True, default=str)
    return "+".join(params["sources"]) + "-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def load_processed(path: str | Path) -> Processed:
    path = Path(path)
    if not (path / "drop_report.json").exists():
        raise FileNotFoundError(f"{path} is not a processed dataset (no drop_report.json); run 01_collect")
    images = datasets.load_from_disk(str(path / "images")) if (path / "images").exists() else None
    clips = datasets.load_from_disk(str(path / "speech")) if (path / "speech").exists() else None
    return Processed(path, images, clips, DropReport.load(path / "drop_report.json"))


def build_dataset(params: dict, data_root: Path, progress: bool = True) -> Processed:
    """Build (or reuse, if the same parameters built it before) ``data/processed/<name>``.

    The name carries a hash of every parameter that shapes the data, so a run with other
    parameters never overwrites this one.
    """
    out = Path(data_root) / "processed" / dataset_name(params)
    if (out / "drop_report.json").exists():
        return load_processed(out)
    built = build(params, data_root, progress=progress)
    # Each process writes its own folder and renames it into place, so the dataset appears
    # whole or not at all, and two runs building the same data at once (a sweep) cannot collide.
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")
    if tmp.exists():  # left by an interrupted build of a process with the same id
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for folder, features in (("images", FEATURES), ("speech", SPEECH_FEATURES)):
        rows = built[folder]
        if any(rows.values()):
            columns = list(features)
            datasets.DatasetDict({
                split: datasets.Dataset.from_dict({c: [r[c] for r in rows[split]] for c in columns},
                                                  features=features)
                for split in SPLITS}).save_to_disk(
                    str(tmp / folder),  # an empty split needs one (empty) shard, or it cannot be loaded
                    num_shards={split: 1 for split in SPLITS if not rows[split]} or None)
    built["drops"].save(tmp / "drop_report.json")
    try:
        tmp.rename(out)
    except OSError:
        if not (out / "drop_report.json").exists():
            raise
        shutil.rmtree(tmp)  # another run finished the same data first; theirs is identical
        log.info("dataset %s was built concurrently by another run; using that copy", out.name)
    return load_processed(out)
