"""What the machine a run ran on can do, measured in the run's own process: machines of one kind
differ 3–4× in speed, so run times are read beside the fp32 matmul rate measured where they ran.

Also the hardware-aware settings: ``bf16=auto`` trains in bf16 on a GPU that supports it and in
fp32 on every CPU — on a CPU without AMX or AVX512-BF16 PyTorch's bf16 matmul is emulated and
2.6–186× *slower* than fp32 (measured on this project's AMD EPYC, AVX2 only), and on an AMD EPYC
with AVX512-BF16 the default series trained in bf16 was slower end to end than in fp32 and answered
VQA 97.6% against 99.8% (docs/results.md) — and the thread count from the cores this process may use.
"""
from __future__ import annotations

import functools
import os
import platform
import time
import warnings
from pathlib import Path

BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of native bf16 matmul on a CPU
SHOWN_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")  # the flags that matter here


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


def _cpuinfo_field(name: str) -> str | None:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    return _cpuinfo_field("model name") or platform.processor() or "unknown"


def cpu_flags() -> set[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where the system does not say)."""
    return set((_cpuinfo_field("flags") or "").split())


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota
    (``cpu.max``, as containers set it) when there is one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = Path("/sys/fs/cgroup/cpu.max")
    if quota.is_file():
        limit, _, period = quota.read_text().partition(" ")
        if limit.strip() not in ("max", "") and period.strip():
            cores = min(cores, max(1, int(int(limit) // int(period))))
    return max(1, cores)


@functools.lru_cache(maxsize=1)
def _torch_default_threads() -> int:
    import torch

    return torch.get_num_threads()  # PyTorch's own choice at start-up: the physical cores it sees


def set_threads() -> int:
    """torch's intra-op threads = the usable cores (no more than PyTorch's own start-up choice,
    which leaves out SMT siblings), unless the user set ``OMP_NUM_THREADS`` (then that is kept):
    a container given 2 of 64 visible cores runs 2 threads, not 64. Returns the count in force."""
    import torch

    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(min(usable_cores(), _torch_default_threads()))
    return torch.get_num_threads()


def gpu() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""


def bf16_native(flags: set[str] | None = None) -> bool:
    """Whether bf16 runs natively here: a CUDA GPU that supports it, or a CPU with AMX or AVX512-BF16."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    return bool(set(BF16_FLAGS) & (cpu_flags() if flags is None else flags))


@functools.lru_cache(maxsize=1)
def bf16_slowdown() -> float:
    """fp32 ÷ bf16 matmul rate on this CPU (256², best of 3: a bf16 matmul can take 186× longer)."""
    import torch

    return matmul_peak(torch.float32, n=256, repeats=3) / matmul_peak(torch.bfloat16, n=256, repeats=3)


def bf16_auto() -> bool:
    """What ``bf16=auto`` decides: bf16 on a CUDA GPU that supports it, fp32 on every CPU (even one
    with native bf16: measured slower end to end and less accurate there on these small models)."""
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def resolve_bf16(setting) -> bool:
    """The ``bf16`` parameter made a decision: ``auto`` → ``bf16_auto`` (a GPU only);
    ``true`` → on, with a warning and the measured slowdown on a CPU without
    native bf16; ``false`` → off. A boolean is a decision already made (``notebook.start`` makes
    it once per notebook, before any training) and is returned as it is."""
    if isinstance(setting, bool):
        return setting
    value = str(setting).lower()
    if value == "false":
        return False
    if value == "auto":
        return bf16_auto()
    if value != "true":
        raise ValueError(f"bf16={setting!r}: use auto, true or false")
    if not bf16_native():
        warnings.warn(f"bf16=true on a CPU without AMX or AVX512-BF16 ({cpu_model()}): its bf16 matmul is "
                      f"{bf16_slowdown():.1f}× slower than fp32, measured now; bf16=auto trains in fp32",
                      RuntimeWarning, stacklevel=2)
    return True


def profile(bf16: bool = True) -> dict[str, str]:
    """The hardware line of ``run.json``: CPU model, the flags that matter, cores (usable /
    logical), the fp32 matmul rate (1024², best of 10, this process's threads), the bf16 rate
    (256², best of 3; with ``bf16``) and the GPU if any."""
    flags = cpu_flags()
    out = {"cpu": cpu_model(), "cpu flags": " ".join(f for f in SHOWN_FLAGS if f in flags) or "none of " + ", ".join(SHOWN_FLAGS),
           "cores (usable / logical)": f"{usable_cores()} / {os.cpu_count()}",
           "fp32 matmul GFLOP/s": f"{matmul_peak() / 1e9:.0f}"}
    if bf16:
        import torch

        out["bf16 matmul GFLOP/s"] = f"{matmul_peak(torch.bfloat16, n=256, repeats=3) / 1e9:.1f}"
    out["bf16 native"] = "yes" if bf16_native(flags) else "no"
    out["gpu"] = gpu() or "none"
    return out
