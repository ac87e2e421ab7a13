"""``accelerate launch`` with 2 CPU processes (gloo) runs the same LM training as 02_train."""
import json
import os
import subprocess
import sys
from pathlib import Path

from mbmlab import params as P
from mbmlab.data import build_dataset


def test_accelerate_launch_two_cpu_processes(tmp_path):
    data = build_dataset(P.resolve("tiny", {"sources": ["easyvqa"], "max_train_images": 60,
                                            "max_test_images": 10}), tmp_path / "data", progress=False)
    accelerate = Path(sys.executable).with_name("accelerate")
    # --multi_gpu selects accelerate's multi-process launcher (torchrun); without GPUs each process
    # trains on the CPU and the Trainer joins them with gloo. (--cpu would start a single process.)
    command = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "mbmlab.pretrain",
               "--dataset", str(data.path), "--out", str(tmp_path / "out"), "--dim", "32", "--layers", "1",
               "--heads", "2", "--vocab-size", "300", "--batch-size", "8", "--epochs", "1"]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = sorted(line.split(" (pid")[0] for line in done.stdout.splitlines() if line.startswith("rank "))
    assert ranks == ["rank 0 of 2", "rank 1 of 2"], done.stdout[-2000:]
    summary = json.loads((tmp_path / "out" / "pretrain.json").read_text())
    lines = sum(len(q) + 1 for q in data.images["train"]["questions"]) - sum(
        1 for c in data.images["train"]["caption"] if not c)
    # each optimiser step consumes 2 processes × 8 lines
    assert summary["world_size"] == 2 and summary["backend"] == "gloo"
    assert summary["global_steps"] == -(-lines // 16)
    assert summary["eval_loss"] < 6 and (tmp_path / "out" / "lm" / "model.safetensors").exists()
