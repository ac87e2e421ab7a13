"""``accelerate launch`` with 2 CPU processes (gloo) runs the same LM training as 02_train."""
import json
import math

from helpers import launch_two_cpu_processes
from mbmlab.lab import params as P
from mbmlab.data.collect import build_dataset


def test_accelerate_launch_two_cpu_processes(tmp_path):
    data = build_dataset(P.resolve("tiny", {"sources": ["easyvqa"], "max_train_images": 60,
                                            "max_test_images": 10}), tmp_path / "data", progress=False)
    launch_two_cpu_processes("mbmlab.lab.launch_pretrain", "--dataset", str(data.path), "--out", str(tmp_path / "out"),
                             "--dim", "32", "--layers", "1", "--heads", "2", "--vocab-size", "300",
                             "--batch-size", "8", "--epochs", "1")
    summary = json.loads((tmp_path / "out" / "pretrain.json").read_text())
    lines = sum(len(q) + 1 for q in data.images["train"]["questions"]) - sum(
        1 for c in data.images["train"]["caption"] if not c)
    # each optimiser step consumes 2 processes × 8 lines
    assert summary["world_size"] == 2 and summary["backend"] == "gloo"
    assert summary["global_steps"] == -(-lines // 16)
    # an LM that learned nothing predicts the 300 tokens uniformly: ln 300 = 5.70 nats; one epoch
    # here measured 4.02, so a bound a nat below uniform fails when the processes do not learn
    # (an untrained model's loss is ≈ 5.7–5.8)
    assert summary["eval_loss"] < math.log(300) - 1.0 and (tmp_path / "out" / "lm" / "model.safetensors").exists()
