"""The series itself: the tiny preset through papermill, then nbval re-executes the outputs.

Cells marked ``# NBVAL_CHECK_OUTPUT`` (data counts, seeded metrics) must reproduce exactly;
``tests/nbval_sanitize.cfg`` masks paths and timings.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mbmlab import params as P
from mbmlab.runner import run_series

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return run_series("tiny", reports=tmp_path_factory.mktemp("reports"), progress=False)


def test_tiny_series_writes_the_report(tiny_run):
    run = json.loads((tiny_run / "run.json").read_text())
    assert run["status"] == "ok" and [nb["status"] for nb in run["notebooks"]] == ["ok"] * 5
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    for name in ("vqa/accuracy", "baseline/majority/vqa/accuracy", "caption/BLEU-4", "caption/CIDEr",
                 "lm/perplexity", "data/test/images", "bias/vqa_accuracy_gap/colour",
                 "attention/max_abs_difference/sdpa", "attention/max_abs_difference/gpt2",
                 "align/image/recall@1", "align/audio/recall@5", "baseline/random_init/align/image/recall@1",
                 "baseline/chance/align/audio/recall@1"):
        assert name in metrics, name
    tiny = P.PRESETS["tiny"]
    assert metrics["data/test/images"] == tiny["max_test_images"] + tiny["scenes_test_images"]
    assert metrics["data/train/clips"] == tiny["speech_max_clips"]
    assert {"vqa/source/easyvqa/accuracy", "vqa/source/scenes/accuracy"} <= set(metrics)
    index = (tiny_run / "index.html").read_text()
    assert "vqa/accuracy" in index and "baseline/majority/vqa/accuracy" in index
    for name in P.NOTEBOOKS:
        assert (tiny_run / f"{name}.html").stat().st_size > 10_000
        assert (tiny_run / f"{name}.ipynb").exists()
    assert (tiny_run / "fused" / "model.safetensors").exists()
    for encoder in ("image_encoder", "audio_encoder"):
        assert (tiny_run / encoder / "encoder" / "model.safetensors").exists()
    assert metrics["attention/max_abs_difference/gpt2"] < 1e-5
    assert sorted(p.name for p in (tiny_run / "figures").glob("*.png"))


def test_tiny_model_learns_something(tiny_run):
    """Even the tiny preset must beat answering 'yes' to everything."""
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["vqa/accuracy"] > metrics["baseline/majority/vqa/accuracy"]


def test_nbval_reproduces_the_checked_outputs(tiny_run):
    notebooks = [str(tiny_run / f"{name}.ipynb") for name in P.NOTEBOOKS]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--current-env", "--sanitize-with",
         str(HERE / "nbval_sanitize.cfg"), "-p", "no:cacheprovider", "-q", "--rootdir", str(tiny_run), *notebooks],
        capture_output=True, text=True, cwd=tiny_run, env=os.environ | {"HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
