"""The benchmark scripts the README quotes still run and print their tables (small sizes)."""
import subprocess
import sys
from pathlib import Path

from helpers import benchmark

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run(script, *args):
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_speech_throughput_prints_both_runs():
    out = run("speech_throughput.py", "--clips", "12", "--repeats", "1")
    assert "first run    12      0" in out and "cached rerun     0     12" in out and "x" in out.splitlines()[-1]


def test_train_throughput_prints_mfu_per_model():
    # a 256² peak: the 2048² bf16 matmuls alone take minutes on a CPU without bf16 hardware (AMD EPYC here)
    out = run("train_throughput.py", "--preset", "tiny", "--steps", "1", "--repeats", "1", "--peak-size", "256")
    from mbmlab.hardware import bf16_native

    for name in ("GPT-2 LM", "ResNet image tower", "Whisper-style audio encoder", "fused model (VQA batch)"):
        row = out.split(name)[1].splitlines()[0]
        assert row.count("%") == (2 if bf16_native() else 1), row  # no bf16 MFU without bf16 hardware
    assert ("bf16 MFU n/a" in out) != bf16_native()


def test_scenes_scale_reports_time_and_memory():
    out = run("scenes_scale.py", "--images", "200")
    assert "200 scenes requested" in out and "images/s" in out and "MiB on disk" in out


def test_generate_throughput_prints_the_ratios():
    out = run("generate_throughput.py", "--preset", "tiny", "--batch", "4", "--new-tokens", "4", "--repeats", "1")
    assert "batched vs one at a time:" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("kv-cache speed-up: ") and last.endswith("×")


def test_vision_towers_prints_accuracy_per_tower():
    out = run("vision_towers.py", "--epochs", "1", "--train-images", "60", "--test-images", "20")
    assert "resnet" in out and "vit" in out and "%" in out.splitlines()[-1]


def test_ctc_pretraining_groups_scores_by_kind_and_voice_group():
    """benchmarks/ctc_pretraining.py's table on a hand case: two trained-voice questions (one word
    of four wrong in one), one held-out caption (right after normalising case and punctuation)."""
    groups, questions = benchmark("ctc_pretraining").scores(["is there a circle?", "what is the shape?", "A red circle."],
                                      ["is there a circle", "what is gray shape", "a red circle"],
                                      ["question", "question", "caption"], ["flite-kal-m", "espeak-gb-f", "flite-rms-m"],
                                      {"flite-rms-m"})
    by = {r.group: r for r in groups.itertuples()}
    assert set(by) == {"question / trained", "caption / held out", "all"}
    assert by["question / trained"].clips == 2 and by["question / trained"].exact == 0.5
    assert by["question / trained"].wer == 1 / 8  # one substitution over 8 reference words
    assert by["caption / held out"].wer == 0.0 and by["caption / held out"].exact == 1.0
    assert by["all"].clips == 3 and by["all"].wer == 1 / 11
    assert list(questions["voice"]) == ["espeak-gb-f", "flite-kal-m"]  # the questions alone, per voice
    assert list(questions["exact"]) == [0.0, 1.0] and list(questions["wer"]) == [0.25, 0.0]


def test_fuse_step_profile_padding_summary_by_hand():
    """benchmarks/fuse_step_profile.py's padding share on two hand-made masks."""
    import torch

    masks = [torch.tensor([[1, 1, 0], [1, 1, 1]]), torch.tensor([[1, 0]])]
    summary = benchmark("fuse_step_profile").padding_summary(masks)
    # 8 positions (2×3 + 1×2), 6 real tokens: a quarter is padding; widths 3 and 2
    assert (summary["positions"], summary["real"], summary["rows"]) == (8, 6, 3)
    assert summary["padding_share"] == 0.25 and summary["width_p5_p50_p95"] == [2.05, 2.5, 2.95]
