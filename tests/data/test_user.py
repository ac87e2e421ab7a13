"""Bring-your-own data: an imagefolder/audiofolder with metadata.csv, and a dataset path."""
import pytest

from mbmlab.lab import params as P
from mbmlab.data.clean import EmptySourceError
from mbmlab.data.collect import build_dataset
from mbmlab.data.clean import DropReport
from mbmlab.data.user import ColumnMap, UserDataError, folder_records, hub_records
from helpers import png, wav


def user_params(folder, **extra):
    return P.resolve("tiny", {"sources": ["user"], "user_dir": str(folder), **extra})


@pytest.fixture
def messy_folder(tmp_path):
    """Good files and one of each kind of bad input, named after what is wrong with them."""
    files = {
        "red.png": png((220, 0, 0)), "blue.png": png((0, 0, 220)), "green.jpg": png((0, 160, 0), fmt="JPEG"),
        "yellow.png": png((230, 220, 0)), "teal.png": png((0, 128, 128)), "grey-L.png": png((90, 90, 90), mode="L"),
        "truncated.png": png((10, 10, 10))[:50], "copy-of-red.bmp": png((220, 0, 0), fmt="BMP"),
        "tiny.png": png(size=(8, 8)), "no-text.png": png((128, 0, 128)),
        "say.wav": wav(freq=300), "say-44k.wav": wav(rate=44_100, channels=2, freq=500),
        "zero-bytes.wav": b"", "all-zero.wav": wav(amplitude=0.0),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    rows = [
        b"file_name,text,question,answer",
        b"red.png,a red square,what color is it?,red",
        b"red.png,,is it red?,yes",  # a second question for the same image
        b"blue.png,a blue square,,",
        b"green.jpg,a green square,,",
        b"yellow.png,a yellow square,,",
        b"teal.png,a teal square,,",
        b"grey-L.png,a grey square,,",
        b"truncated.png,a black square,,",
        b"copy-of-red.bmp,a red square again,,",
        b"tiny.png,too small,,",
        b"no-text.png,   ,,",
        "caf\u00e9.png,a caf\u00e9 in Latin-1,,".encode("latin-1"),  # not UTF-8
        b"missing.png,this file is not there,,",
        b"say.wav,hello there,,",
        b"say-44k.wav,hello again,,",
        b"zero-bytes.wav,nothing,,",
        b"all-zero.wav,silence,,",
        b"notes.txt,not an image,,",
    ]
    (tmp_path / "metadata.csv").write_bytes(b"\n".join(rows) + b"\n")
    return tmp_path


def test_folder_records_group_questions_by_image(messy_folder):
    drops = DropReport()
    found = folder_records(messy_folder, ColumnMap(), drops)
    images = {r["image_id"]: r for r in found["images"][""]}
    red = images["user-all-red.png"]
    assert red["caption"] == "a red square" and red["questions"] == ["what color is it?", "is it red?"]
    assert len(found["audio"][""]) == 4
    assert drops.counts() == {"record: undecodable text": 1, "record: unsupported file": 1}


def test_messy_folder_builds_with_every_drop_explained(messy_folder, tmp_path_factory):
    processed = build_dataset(user_params(messy_folder), tmp_path_factory.mktemp("data"), progress=False)
    assert processed.drops.counts() == {
        "caption: empty text": 1,            # no-text.png's caption is blank …
        "record: duplicate image": 1,        # copy-of-red.bmp
        "record: image too small": 1,        # tiny.png
        "record: missing image": 1,          # missing.png
        "record: missing text": 1,           # … and it has no question either
        "record: silent audio": 1,           # all-zero.wav
        "record: undecodable audio": 1,      # zero-bytes.wav
        "record: undecodable image": 1,      # truncated.png
        "record: undecodable text": 1,       # the Latin-1 row
        "record: unsupported file": 1,       # notes.txt
    }
    assert processed.drops.change_counts() == {
        "converted L to RGB": 1, "down-mixed 2 channels to mono": 1, "resampled 44100 Hz to 16000 Hz": 1}
    images = {r: s for s, split in processed.images.items() for r in split["image_id"]}
    assert len(images) == 6  # red, blue, green, yellow, teal, grey
    clips = {r: s for s, split in processed.speech.items() for r in split["clip_id"]}
    assert sorted(clips) == ["user-all-say-44k.wav", "user-all-say.wav"]
    assert all(len(split) for split in processed.images.values())  # seeded split into all three
    row = next(r for s in processed.images.values() for r in s if r["image_id"] == "user-all-grey-L.png")
    assert row["image"].mode == "RGB"


def test_split_folders_are_kept(tmp_path, tmp_path_factory):
    for split, colours in (("train", [(200, 0, 0), (0, 200, 0)]), ("test", [(0, 0, 200)])):
        folder = tmp_path / split
        folder.mkdir()
        lines = ["file_name,text"]
        for i, colour in enumerate(colours):
            (folder / f"{i}.png").write_bytes(png(colour))
            lines.append(f"{i}.png,picture {i}")
        (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    processed = build_dataset(user_params(tmp_path), tmp_path_factory.mktemp("data"), progress=False)
    assert {s: len(d) for s, d in processed.images.items()} == {"train": 2, "validation": 0, "test": 1}


def test_a_folder_brings_its_own_translations(tmp_path, tmp_path_factory):
    """translation_column maps the folder's column; a translation of an image without a caption
    is a logged drop; a German target is allowed for user data (only the drawn sources are zh-only)."""
    lines = ["file_name,text,deutsch"]
    for i, (colour, text, german) in enumerate([((200, 0, 0), "a red square", "ein rotes Quadrat"),
                                                ((0, 200, 0), "a green square", ""),
                                                ((0, 0, 200), "", "ein blaues Quadrat")]):
        (tmp_path / f"{i}.png").write_bytes(png(colour))
        lines.append(f"{i}.png,{text},{german}")
    (tmp_path / "0.png").write_bytes(png((200, 0, 0)))
    (tmp_path / "metadata.csv").write_text("\n".join(lines) + "\n")
    params = user_params(tmp_path, translation_column="deutsch", target_language="de")
    processed = build_dataset(params, tmp_path_factory.mktemp("data"), progress=False)
    rows = {r["image_id"]: r for split in processed.images.values() for r in split}
    assert rows["user-all-0.png"]["translation"] == "ein rotes Quadrat"
    assert rows["user-all-1.png"]["translation"] == ""
    assert "user-all-2.png" not in rows  # no caption, no question: dropped as missing text
    assert processed.drops.counts() == {"record: missing text": 1, "translation: translation without a caption": 1}


def test_unusable_folders_are_errors(tmp_path, tmp_path_factory):
    with pytest.raises(UserDataError, match="no metadata.csv"):
        folder_records(tmp_path, ColumnMap(), DropReport())
    (tmp_path / "metadata.csv").write_text("path,text\na.png,x\n")
    with pytest.raises(UserDataError, match="file_name"):
        folder_records(tmp_path, ColumnMap(), DropReport())
    (tmp_path / "metadata.csv").write_text("file_name,text\nbad.png,x\n")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(EmptySourceError, match="user: cleaning dropped every one of its 1 records"):
        build_dataset(user_params(tmp_path), tmp_path_factory.mktemp("data"), progress=False)


def test_dataset_path_with_a_column_mapping(tmp_path):
    """The hub code path, on a dataset saved locally as parquet (load_dataset reads both)."""
    import datasets

    rows = {"picture": [{"bytes": png((200, 0, 0)), "path": None}, {"bytes": png((0, 0, 200)), "path": None}],
            "words": ["a red square", "a blue square"], "q": ["what color?", "what color?"], "a": ["red", "blue"]}
    features = datasets.Features({"picture": datasets.Image(), "words": datasets.Value("string"),
                                  "q": datasets.Value("string"), "a": datasets.Value("string")})
    (tmp_path / "data").mkdir()
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(tmp_path / "data" / "train-00000.parquet"))
    found = hub_records(str(tmp_path), ColumnMap(image="picture", text="words", question="q", answer="a"),
                        DropReport())
    records = found["images"][""]
    assert [r["caption"] for r in records] == ["a red square", "a blue square"]
    assert records[1]["questions"] == ["what color?"] and records[1]["answers"] == ["blue"]
    assert records[0]["image"].startswith(b"\x89PNG")
    with pytest.raises(UserDataError, match="set image_column"):
        hub_records(str(tmp_path), ColumnMap(image="nope", audio="nope"), DropReport())
