"""What the machine a run ran on can do, measured in the run's own process: machines of one kind
differ 3–4× in speed, so run times are read beside the fp32 matmul rate measured where they ran."""
from __future__ import annotations

import platform
import time
from pathlib import Path


def matmul_peak(dtype=None, n: int = 1024, repeats: int = 10) -> float:
    """Best-of-``repeats`` FLOP/s of one n×n @ n×n matmul in ``dtype`` (default fp32), after a warm-up."""
    import torch

    dtype = dtype or torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def profile() -> dict[str, str]:
    """The CPU model and the fp32 matmul rate (1024², best of 10, this process's threads)."""
    return {"cpu": cpu_model(), "fp32 matmul GFLOP/s": f"{matmul_peak() / 1e9:.0f}"}
