"""A user's own image folder through the whole tiny series: captions only (with their Chinese, so
the tiny preset's translate task trains and 04 scores it), or questions only."""
import json
from pathlib import Path

import pytest

from helpers import png
from mbmlab.lab.runner import run_series


COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 160, 60), "yellow": (230, 210, 30)}
CHINESE = {"red": "一个红色正方形", "blue": "一个蓝色正方形", "green": "一个绿色正方形", "yellow": "一个黄色正方形"}


def user_folder(path: Path, kind: str) -> Path:
    """24 small pictures of coloured squares with captions (and translations) only, or with
    questions only."""
    path.mkdir()
    rows = ["file_name,text,translation" if kind == "captions" else "file_name,question,answer"]
    for i in range(24):
        name, rgb = list(COLOURS.items())[i % 4]
        shade = tuple(max(0, c - 3 * (i // 4)) for c in rgb)  # each picture different (no duplicates)
        (path / f"{i}.png").write_bytes(png(shade, size=(32, 32)))
        rows.append(f"{i}.png,a {name} square,{CHINESE[name]}" if kind == "captions"
                    else f"{i}.png,what color is it?,{name}")
    (path / "metadata.csv").write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("kind, present, absent", [
    ("captions", "caption/CIDEr", ("vqa/exact_match", "asr/wer", "spoken_vqa/exact_match", "speech_translate/bleu",
                                   "translated_vqa/exact_match")),
    ("questions", "vqa/exact_match", ("caption/CIDEr", "asr/wer", "spoken_vqa/exact_match", "translate/bleu",
                                      "speech_translate/bleu", "translated_vqa/exact_match")),
])
def test_a_user_folder_runs_through_the_series(tmp_path, kind, present, absent):
    folder = user_folder(tmp_path / kind, kind)
    run = run_series("tiny", {"sources": ["user"], "user_dir": str(folder), "val_fraction": 0.2,
                              "align_epochs": 1.0, "fuse_epochs": 2.0, "lm_epochs": 1.0},
                     reports=tmp_path / "reports", progress=False)
    assert json.loads((run / "run.json").read_text())["status"] == "ok"
    metrics = json.loads((run / "metrics.json").read_text())
    assert present in metrics
    for name in absent:
        assert name not in metrics, name
    assert all(v == v for v in metrics.values())  # no NaN
    fuse_json = json.loads((run / "fuse.json").read_text())
    assert {name.split("/")[0] for name in absent} == set(fuse_json["skipped"])
    if kind == "captions":  # the folder's own translations, trained and scored
        assert metrics["translate/bleu"] >= 0 and "baseline/blank_image/translate/bleu" in metrics
