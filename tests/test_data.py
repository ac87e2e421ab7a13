import json

import pytest

from mbmlab.data import DropReport, build_dataset, split_by_image
from mbmlab.data import easyvqa
from mbmlab.data.card import data_card, qa_frame
from mbmlab.data.collect import clean_easyvqa_record


def test_attributes_from_direct_answers():
    assert easyvqa.derive_attributes(["what color is the triangle?", "what shape is in the image?"],
                                     ["blue", "triangle"]) == ("blue", "triangle")


def test_attributes_from_negated_yes_no_questions():
    # shape: not a circle, not a rectangle → triangle; colour named by "is there not a red shape? no"
    questions = ["is there not a red shape?", "does the image not contain a circle?", "is there a rectangle?"]
    assert easyvqa.derive_attributes(questions, ["no", "yes", "no"]) == ("red", "triangle")


def test_conflicting_or_missing_evidence_is_an_error():
    with pytest.raises(easyvqa.CaptionError, match="conflicting colour"):
        easyvqa.derive_attributes(["what color is the shape?", "what color is the shape?"], ["red", "blue"])
    with pytest.raises(easyvqa.CaptionError, match="colour undetermined"):
        easyvqa.derive_attributes(["what shape is in the image?"], ["circle"])


def test_question_types():
    assert [easyvqa.question_type(a) for a in ("red", "circle", "yes")] == ["colour", "shape", "yes/no"]
    with pytest.raises(ValueError):
        easyvqa.question_type("maybe")


def test_split_by_image_keeps_test_and_never_shares_images():
    train = [{"image_id": f"tr{i}"} for i in range(50)]
    test = [{"image_id": f"te{i}"} for i in range(10)]
    splits = split_by_image(train, test, val_fraction=0.2, seed=0)
    ids = {name: {r["image_id"] for r in rows} for name, rows in splits.items()}
    assert ids["test"] == {r["image_id"] for r in test}
    assert len(ids["validation"]) == 10 and len(ids["train"]) == 40
    assert not ids["train"] & ids["validation"]
    assert split_by_image(train, test, 0.2, seed=0) == splits  # seeded
    assert split_by_image(train, test, 0.2, seed=1) != splits


def test_truncated_image_is_dropped_with_its_reason(tmp_path):
    good = easyvqa.raw_records("train")[0]
    broken = tmp_path / "broken.png"
    broken.write_bytes(open(good["image_path"], "rb").read()[:60])
    drops = DropReport()
    row = clean_easyvqa_record(dict(good, image_path=str(broken), image_id="x"), drops)
    assert row is None
    assert drops.counts() == {"record: undecodable image": 1}
    assert drops.entries[0]["id"] == "x"


def test_record_without_questions_or_image_is_dropped():
    good = easyvqa.raw_records("train")[0]
    drops = DropReport()
    assert clean_easyvqa_record(dict(good, questions=[], answers=[]), drops) is None
    assert clean_easyvqa_record(dict(good, image_path=None), drops) is None
    assert drops.counts() == {"record: missing image": 1, "record: no questions": 1}


TINY = {"source": "easyvqa", "seed": 0, "val_fraction": 0.1, "max_train_images": 60, "max_test_images": 20}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return (root, *build_dataset(TINY, root, progress=False))


def test_built_dataset_splits_and_features(built):
    root, path, dataset, drops = built
    assert path.parent == root / "processed"
    assert {k: len(v) for k, v in dataset.items()} == {"train": 54, "validation": 6, "test": 20}
    ids = {name: set(split["image_id"]) for name, split in dataset.items()}
    assert not (ids["train"] & ids["validation"]) and not (ids["train"] & ids["test"])
    assert all(i.startswith("easyvqa-test-") for i in ids["test"])
    record = dataset["train"][0]
    assert record["image"].size == (64, 64) and record["image"].mode == "RGB"
    assert len(record["questions"]) == len(record["answers"]) == len(record["question_types"])
    # every missing caption is accounted for in the drop report
    missing = sum(1 for split in dataset.values() for c in split["caption"] if not c)
    assert drops.counts().get("caption: caption undetermined by QA pairs", 0) == missing
    saved = json.loads((path / "drop_report.json").read_text())
    assert len(saved["entries"]) == len(drops.entries)


def test_same_parameters_reuse_the_dataset(built):
    root, path, dataset, _ = built
    stamp = (path / "dataset_dict.json").stat().st_mtime_ns
    again_path, again, _ = build_dataset(TINY, root, progress=False)
    assert again_path == path and (path / "dataset_dict.json").stat().st_mtime_ns == stamp
    assert again["train"]["image_id"] == dataset["train"]["image_id"]


def test_data_card_counts(built):
    _, _, dataset, drops = built
    card = data_card(dataset, drops)
    assert card["splits"]["test"]["images"] == 20
    assert card["splits"]["test"]["questions"] == len(qa_frame(dataset["test"]))
    assert sum(card["splits"]["train"]["answers"].values()) == card["splits"]["train"]["questions"]


def test_concurrent_build_of_the_same_data_keeps_the_first_copy(built, monkeypatch):
    """A sweep may build the same data in two processes; the loser must not fail or corrupt it."""
    import mbmlab.data.collect as collect

    root, path, dataset, _ = built
    stamp = (path / "dataset_dict.json").stat().st_mtime_ns
    real_exists = collect.Path.exists
    hidden = [True]

    def exists(self):  # the cache check (first look only) runs before the other process finished
        if self == path / "dataset_dict.json" and hidden[0]:
            hidden[0] = False
            return False
        return real_exists(self)

    monkeypatch.setattr(collect.Path, "exists", exists)
    again_path, again, _ = build_dataset(TINY, root, progress=False)
    monkeypatch.undo()
    assert again_path == path and (path / "dataset_dict.json").stat().st_mtime_ns == stamp
    assert again["test"]["image_id"] == dataset["test"]["image_id"]
    assert not list(path.parent.glob("*.partial-*"))
