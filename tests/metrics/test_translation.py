"""BLEU and chrF for translations: a hand case against sacrebleu's command line, the Chinese
tokenizer, and the cluster bootstrap."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mbmlab.metrics.translation import translation_metrics

REFERENCES = ["一个红色圆形", "一个绿色长方形", "一个大的红色星形", "一个小的蓝色三角形在一个大的黄色圆形左边"]
PREDICTIONS = ["一个红色圆形", "一个蓝色长方形", "一个小的红色星形", "一个小的蓝色三角形在一个黄色圆形左边"]


def test_hand_case_matches_the_sacrebleu_command_line(tmp_path):
    """``sacrebleu ref.txt -i hyp.txt -tok zh -m bleu chrf -w 4 -b`` prints 75.6562 and 67.1900 for
    these four sentences (sacrebleu 2.6); the same command is run here when it is installed."""
    scores = translation_metrics(REFERENCES, PREDICTIONS, "zh")
    assert scores["bleu"] == pytest.approx(75.6562, abs=1e-4)
    assert scores["chrf"] == pytest.approx(67.1900, abs=1e-4)
    cli = shutil.which("sacrebleu") or str(Path(sys.executable).with_name("sacrebleu"))
    if not Path(cli).exists():
        pytest.skip("no sacrebleu command")
    (tmp_path / "ref.txt").write_text("\n".join(REFERENCES) + "\n")
    (tmp_path / "hyp.txt").write_text("\n".join(PREDICTIONS) + "\n")
    out = subprocess.run([cli, str(tmp_path / "ref.txt"), "-i", str(tmp_path / "hyp.txt"), "-tok", "zh",
                          "-m", "bleu", "chrf", "-w", "4", "-b"], capture_output=True, text=True, check=True).stdout
    bleu, chrf = (float(x.strip(",")) for x in out.split() if x.strip(",").replace(".", "").isdigit())
    assert (round(scores["bleu"], 4), round(scores["chrf"], 4)) == (bleu, chrf)


def test_chinese_needs_its_tokenizer():
    """Without the zh tokenizer a Chinese sentence is one token, and only exact sentences count."""
    assert translation_metrics(REFERENCES, PREDICTIONS, "de")["bleu"] == 0.0
    assert translation_metrics(REFERENCES, PREDICTIONS, "zh")["bleu"] > 70
    with pytest.raises(ValueError, match="supported: zh, de, fr, cs"):
        translation_metrics(REFERENCES, PREDICTIONS, "xx")


def test_intervals_resample_clusters_whole():
    scores = translation_metrics(REFERENCES, PREDICTIONS, "zh", resamples=200)
    assert scores["bleu/ci95_low"] < scores["bleu"] < scores["bleu/ci95_high"]
    assert scores["chrf/ci95_low"] < scores["chrf"] < scores["chrf/ci95_high"]
    one = translation_metrics(REFERENCES, PREDICTIONS, "zh", clusters=["a"] * 4, resamples=50)
    assert one["bleu/ci95_low"] == one["bleu"] == one["bleu/ci95_high"]  # one cluster: every resample is the corpus
    perfect = translation_metrics(REFERENCES, REFERENCES, "zh", resamples=50)
    assert perfect["bleu"] == pytest.approx(100) and perfect["bleu/ci95_low"] == pytest.approx(100)
    assert perfect["chrf"] == pytest.approx(100)


def test_paired_difference_draws_the_same_images_for_both():
    from mbmlab.metrics.translation import translation_difference

    same = translation_difference(REFERENCES, PREDICTIONS, PREDICTIONS, "zh", "gap", resamples=100)
    assert same["gap/bleu"] == same["gap/bleu/ci95_low"] == same["gap/bleu/ci95_high"] == 0.0  # paired: always 0
    worse = ["一个圆形", "一个长方形", "一个星形", "一个三角形"]
    gap = translation_difference(REFERENCES, PREDICTIONS, worse, "zh", "gap", resamples=200)
    a, b = (translation_metrics(REFERENCES, p, "zh", resamples=10) for p in (PREDICTIONS, worse))
    assert gap["gap/bleu"] == pytest.approx(a["bleu"] - b["bleu"]) and gap["gap/chrf"] == pytest.approx(a["chrf"] - b["chrf"])
    assert 0 < gap["gap/chrf/ci95_low"] <= gap["gap/chrf"] <= gap["gap/chrf/ci95_high"]
