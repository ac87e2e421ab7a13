import json

import pytest

from mbmlab.lab import params as P
from mbmlab.data.clean import DropReport, EmptySourceError
from mbmlab.data.collect import add_translations, build_dataset, load_processed, split_by_image
from mbmlab.data import easyvqa
from mbmlab.data.card import conditional_probabilities, data_card, qa_frame
from mbmlab.data.clean import Cleaner
from mbmlab.data.collect import clean_images, easyvqa_record


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


def test_truncated_easyvqa_image_is_dropped_with_its_reason(tmp_path):
    good = easyvqa.raw_records("train")[0]
    broken = tmp_path / "broken.png"
    broken.write_bytes(open(good["image_path"], "rb").read()[:60])
    drops = DropReport()
    assert Cleaner(drops).image_record(easyvqa_record(dict(good, image_path=str(broken), image_id="x"))) is None
    assert drops.counts() == {"record: undecodable image": 1}
    assert drops.entries[0]["id"] == "x"


def test_easyvqa_record_without_questions_or_image_is_dropped():
    good = easyvqa.raw_records("train")[0]
    drops = DropReport()
    cleaner = Cleaner(drops)
    no_qa = easyvqa_record(dict(good, questions=[], answers=[]))
    assert cleaner.image_record(no_qa) is None
    assert cleaner.image_record(easyvqa_record(dict(good, image_path=None))) is None
    assert drops.counts() == {"record: missing image": 1, "record: missing text": 1}


def test_a_source_that_loses_every_record_is_an_error():
    records = {"train": [{"image_id": f"x{i}", "source": "s", "image": b"broken", "caption": "a"} for i in range(3)]}
    with pytest.raises(EmptySourceError, match="dropped every one of its 3 records"):
        clean_images("s", records, Cleaner(DropReport()), progress=False)


TINY = P.for_notebook(P.NB_COLLECT, P.resolve("tiny", {"max_train_images": 60, "max_test_images": 20,
                                                        "scenes_images": 30, "scenes_test_images": 10,
                                                        "speech_max_clips": 12, "bias_pairs": ["circle:red"]}))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return root, build_dataset(TINY, root, progress=False)


def test_built_dataset_splits_and_features(built):
    root, processed = built
    assert processed.path.parent == root / "processed" and processed.path.name.startswith("easyvqa+scenes+speech-")
    images = processed.images
    assert {k: len(v) for k, v in images.items()} == {"train": 54 + 27, "validation": 6 + 3, "test": 20 + 10}
    ids = {name: set(split["image_id"]) for name, split in images.items()}
    assert not (ids["train"] & ids["validation"]) and not (ids["train"] & ids["test"])
    assert not (ids["validation"] & ids["test"])
    assert {i.split("-")[0] for i in ids["test"]} == {"easyvqa", "scenes"}
    record = images["train"][0]
    assert record["image"].size == (64, 64) and record["image"].mode == "RGB"
    assert len(record["questions"]) == len(record["answers"]) == len(record["question_types"])
    # every missing caption is accounted for in the drop report
    missing = sum(1 for split in images.values() for c in split["caption"] if not c)
    assert processed.drops.counts().get("caption: caption undetermined by QA pairs", 0) == missing
    saved = json.loads((processed.path / "drop_report.json").read_text())
    assert len(saved["entries"]) == len(processed.drops.entries)


def test_drawn_sources_come_translated(built):
    """Every caption, question and answer of easy-VQA and the scenes has its Chinese (the grammar
    covers their whole language, so nothing is dropped), aligned with the English."""
    _, processed = built
    rows = [r for split in processed.images.values() for r in split.select_columns(
        ["caption", "translation", "questions", "translated_questions", "translated_answers"])]
    assert not [e for e in processed.drops.entries if e["scope"] == "translation"]
    for row in rows:
        assert bool(row["translation"]) == bool(row["caption"])
        assert row["translation"].startswith("一个") or not row["caption"]
        assert len(row["translated_questions"]) == len(row["questions"]) == len(row["translated_answers"])
        assert all(q.endswith("？") for q in row["translated_questions"]) and all(row["translated_answers"])
    from mbmlab.names import TRANSLATED_COLUMNS  # the one list the tasks and 02's corpus read

    assert set(TRANSLATED_COLUMNS) <= set(processed.images["train"].column_names)


def test_text_outside_the_grammar_is_a_logged_translation_drop():
    drops = DropReport()
    rows = [{"image_id": "scenes-train-0", "caption": "a red circle above a blue star",
             "questions": ["is there a red circle?", "is the circle above the star?"], "answers": ["yes", "no"]}]
    add_translations("scenes", rows, drops)
    assert rows[0]["translation"] == "" and rows[0]["translated_questions"] == ["有红色圆形吗？", ""]
    assert rows[0]["translated_answers"] == ["是", ""]
    assert [(e["id"], e["scope"]) for e in drops.entries] == [("scenes-train-0", "translation"),
                                                              ("scenes-train-0#q1", "translation")]
    user_row = [{"image_id": "user-all-a.png", "caption": "a dog", "translation": "一只狗",
                 "questions": ["what is it?"], "answers": ["a dog"]}]
    add_translations("user", user_row, drops)  # a user's translation is kept; its questions have none
    assert user_row[0]["translation"] == "一只狗" and user_row[0]["translated_questions"] == [""]


def test_no_image_is_in_two_splits_and_clips_follow_their_image(built):
    _, processed = built
    split_of = {}
    for name, split in processed.images.items():
        for image_id in split["image_id"]:
            assert image_id not in split_of, image_id
            split_of[image_id] = name
    # two texts per image (speech_per_image=2), capped at 12 clips per split
    assert {k: len(v) for k, v in processed.speech.items()} == {"train": 12, "validation": 12, "test": 12}
    for name, split in processed.speech.items():
        assert all(split_of[i] == name for i in split["image_id"])
    clip = processed.speech["test"][0]
    samples = clip["audio"].get_all_samples()
    assert samples.sample_rate == 16_000 and samples.data.shape[0] == 1
    assert clip["transcript"] and clip["engine"] in ("espeak-ng", "flite") and clip["gender"] in ("female", "male")


def test_same_parameters_reuse_the_dataset(built):
    root, processed = built
    stamp = (processed.path / "drop_report.json").stat().st_mtime_ns
    again = build_dataset(TINY, root, progress=False)
    assert again.path == processed.path and (processed.path / "drop_report.json").stat().st_mtime_ns == stamp
    assert again.images["train"]["image_id"] == processed.images["train"]["image_id"]


def test_other_data_code_builds_another_folder(tmp_path, monkeypatch):
    """The same parameters built by changed data code (session 15's speech plan fix, which an old
    folder of the same parameters hid from three runs) get another folder. Mutation: the code hash
    left out of the name → fails."""
    from mbmlab.data import collect

    data = tmp_path / "data"
    data.mkdir()
    (data / "plan.py").write_text("VOICES = 'round-robin over texts'\n")
    before = collect.data_code(data)
    assert collect.data_code(data) == before
    (data / "plan.py").write_text("VOICES = 'round-robin within each kind'\n")
    assert collect.data_code(data) != before
    # mbmlab.names beside the package counts too (its languages and grammar sources shape the build).
    # Mutation: names.py left out of the hash → fails.
    changed = collect.data_code(data)
    (tmp_path / "names.py").write_text("GRAMMAR_LANGUAGES = {'easyvqa': 'zh'}\n")
    assert collect.data_code(data) != changed
    name = collect.dataset_name(TINY)
    monkeypatch.setattr(collect, "data_code", lambda folder=None: "changed")
    assert collect.dataset_name(TINY) != name and collect.dataset_name(TINY).startswith("+".join(TINY["sources"]))


def test_same_seed_builds_a_byte_identical_dataset(built, tmp_path):
    """A second build from scratch — its own speech cache too — writes the same bytes in every file."""
    _, processed = built
    other = build_dataset(TINY, tmp_path, progress=False)
    files = sorted(p.relative_to(processed.path) for p in processed.path.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(other.path) for p in other.path.rglob("*") if p.is_file())
    for name in files:
        assert (processed.path / name).read_bytes() == (other.path / name).read_bytes(), name


def test_data_card_counts_and_bias(built):
    _, processed = built
    card = data_card(processed, {"circle": "red"})
    assert card["splits"]["test"]["images"] == 30
    assert card["splits"]["test"]["sources"] == {"easyvqa": 20, "scenes": 10}
    assert card["splits"]["test"]["questions"] == len(qa_frame(processed.images["test"]))
    assert sum(card["splits"]["train"]["answers"].values()) == card["splits"]["train"]["questions"]
    assert card["speech"]["train"]["clips"] == 12
    table = conditional_probabilities(processed.images, {"circle": "red"})
    assert list(table["split"]) == ["train", "validation", "test"]
    assert card["bias"] == table.to_dict(orient="records")


def test_bias_strength_is_realised_in_train_only(tmp_path):
    params = P.resolve("tiny", {"sources": ["scenes"], "scenes_images": 1500, "scenes_test_images": 1500,
                                "bias_pairs": ["star:blue"], "bias_strength": 0.7})
    processed = build_dataset(params, tmp_path, progress=False)
    table = conditional_probabilities(processed.images, {"star": "blue"}).set_index("split")
    assert abs(table.loc["train", "P(colour | shape)"] - 0.7) < 0.06
    assert abs(table.loc["test", "P(colour | shape)"] - 1 / 8) < 0.05


def test_concurrent_build_of_the_same_data_keeps_the_first_copy(built, monkeypatch):
    """A sweep may build the same data in two processes; the loser must not fail or corrupt it."""
    import mbmlab.data.collect as collect

    root, processed = built
    path = processed.path
    stamp = (path / "drop_report.json").stat().st_mtime_ns
    real_exists = collect.Path.exists
    hidden = [True]

    def exists(self):  # the cache check (first look only) runs before the other process finished
        if self == path / "drop_report.json" and hidden[0]:
            hidden[0] = False
            return False
        return real_exists(self)

    monkeypatch.setattr(collect.Path, "exists", exists)
    again = build_dataset(TINY, root, progress=False)
    monkeypatch.undo()
    assert again.path == path and (path / "drop_report.json").stat().st_mtime_ns == stamp
    assert again.images["test"]["image_id"] == processed.images["test"]["image_id"]
    assert not list(path.parent.glob("*.partial-*"))


def test_sources_are_checked_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="speech source speaks"):
        build_dataset(P.resolve("tiny", {"sources": ["speech"]}), tmp_path)
    with pytest.raises(ValueError, match="exactly one of user_dir"):
        build_dataset(P.resolve("tiny", {"sources": ["user"]}), tmp_path)
    with pytest.raises(ValueError, match="translate only into zh"):
        build_dataset(P.resolve("tiny", {"target_language": "de"}), tmp_path)
    with pytest.raises(P.ParameterError, match="allowed values: zh, de, fr, cs"):
        P.resolve("tiny", {"target_language": "xx"})
    with pytest.raises(FileNotFoundError, match="run 01_collect"):
        load_processed(tmp_path)
