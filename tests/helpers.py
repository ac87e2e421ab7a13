"""Small files for data tests: images and WAVs made here, so no test needs a download."""
import io
import wave

import numpy as np
from PIL import Image


def png(colour=(200, 30, 30), size=(32, 32), mode="RGB", fmt="PNG") -> bytes:
    im = Image.new("RGB", size, (255, 255, 255))
    im.paste(colour, (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    buffer = io.BytesIO()
    (im.convert(mode) if mode != "RGB" else im).save(buffer, format=fmt)
    return buffer.getvalue()


def wav(seconds=1.0, rate=16_000, channels=1, amplitude=0.3, freq=440.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    signal = amplitude * np.sin(2 * np.pi * freq * t)
    frames = np.repeat(signal[:, None], channels, axis=1)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((frames * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def launch_two_cpu_processes(module: str, *args: str):
    """``accelerate launch`` of ``python -m module`` with 2 CPU processes; asserts it succeeded and
    that both ranks reported (each script prints ``rank R of N (pid …)``). Returns the process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    accelerate = Path(sys.executable).with_name("accelerate")
    # --multi_gpu selects accelerate's multi-process launcher (torchrun); without GPUs each process
    # trains on the CPU and the Trainer joins them with gloo. (--cpu would start a single process.)
    command = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "-m", module, *args]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    import re  # the two ranks print at once: their lines can run together

    ranks = sorted(re.findall(r"rank \d+ of \d+(?= \(pid)", done.stdout))
    assert ranks == ["rank 0 of 2", "rank 1 of 2"], done.stdout[-2000:]
    return done


def fake_run(path, metrics=None, params=None, preset="default", status="ok", **run_fields):
    """A run folder as ``mbmlab run`` leaves it, written by hand for the lab's tests: ``metrics.json``,
    and, when ``params`` is given, ``params.json`` and ``run.json`` (``run_fields`` added to it)."""
    import json
    from pathlib import Path

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.json").write_text(json.dumps(metrics or {}))
    if params is not None:
        (path / "params.json").write_text(json.dumps(params))
        (path / "run.json").write_text(json.dumps({"run_id": path.name, "preset": preset, "status": status,
                                                   **run_fields}))
    return path


PITCH = {"a": 300.0, "b": 700.0, "c": 1500.0, "d": 3000.0}  # Hz: apart on the mel scale


def tone_clip(word: str, rng: np.random.Generator, rate: int = 16_000) -> np.ndarray:
    """Each letter 0.1 s of its tone, 0.05 s of silence between letters, a random lead-in."""
    parts = [np.zeros(int(rng.uniform(0.0, 0.1) * rate), np.float32)]
    for letter in word:
        t = np.arange(int(0.1 * rate)) / rate
        parts += [0.3 * np.sin(2 * np.pi * PITCH[letter] * t).astype(np.float32), np.zeros(int(0.05 * rate), np.float32)]
    return np.concatenate(parts)


def tone_clips(n: int, seed: int, spaced: bool = False):
    """``n`` clips of 1–4 letters; ``spaced``: each letter a word of the transcript ("c a d")."""
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(list(PITCH), size=rng.integers(1, 5))) for _ in range(n)]
    from mbmlab.models import audio
    from mbmlab.training import ctc as ctc_training

    extractor = audio.feature_extractor(1)
    out = extractor([tone_clip(w, rng) for w in words], sampling_rate=16_000, return_tensors="pt",
                    padding="max_length", truncation=True, return_attention_mask=True)
    return ctc_training.Clips(out["input_features"], out["attention_mask"],
                              [" ".join(w) if spaced else w for w in words])


def nbval_ipc_env() -> dict:
    """The environment for a pytest subprocess run with ``-p nbval_ipc``: this process's, with
    tests/ (where ``nbval_ipc.py`` lives) put before any PYTHONPATH it had."""
    import os
    from pathlib import Path

    tests = str(Path(__file__).resolve().parent)
    return os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))}


def benchmark(name: str):
    """The script ``benchmarks/<name>.py`` loaded as a module (benchmarks/ is no package), to call its
    functions on hand cases."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
