"""The hardware profile of run.json and the hardware-aware settings (mbmlab.hardware)."""
from mbmlab import hardware
from mbmlab.lab import runner


def test_matmul_peak_counts_two_n_cubed_flops_per_timed_matmul(monkeypatch):
    clock = iter([0.0, 0.5, 1.0, 1.25, 2.0, 3.0])  # three timed matmuls: 0.5 s, 0.25 s, 1 s
    monkeypatch.setattr(hardware.time, "perf_counter", lambda: next(clock))
    assert hardware.matmul_peak(n=8, repeats=3) == 2 * 8**3 / 0.25  # the best of the three


def test_the_environment_carries_the_cpu_and_its_measured_matmul_rate():
    env = runner.environment()
    assert env["cpu"] and float(env["fp32 matmul GFLOP/s"]) > 0


def no_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_bf16_auto_trains_in_fp32_on_every_cpu_and_in_bf16_on_a_gpu_that_has_it(monkeypatch):
    """AMD Zen 3 (AVX2 only), AVX512-BF16, AMX: auto trains in fp32 (on AVX512-BF16 the default
    series measured slower and 2 points less accurate in bf16); a GPU with bf16: in bf16, one
    without: fp32. Mutations: auto → bf16_native() fails the CPU loop; auto → False fails the GPU."""
    import torch

    no_gpu(monkeypatch)
    for flags in ({"avx2", "fma"}, {"avx2", "avx512_bf16"}, {"avx2", "amx_bf16", "avx512_bf16"}):
        monkeypatch.setattr(hardware, "cpu_flags", lambda flags=flags: flags)
        assert hardware.resolve_bf16("auto") is False, flags
    assert hardware.resolve_bf16("false") is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert hardware.resolve_bf16("auto") is True
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert hardware.resolve_bf16("auto") is False
    assert hardware.resolve_bf16(False) is False and hardware.resolve_bf16(True) is True  # decided already


def test_bf16_true_on_a_cpu_without_it_warns_with_the_measured_slowdown(monkeypatch):
    import warnings

    import pytest

    no_gpu(monkeypatch)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2"})
    monkeypatch.setattr(hardware, "bf16_slowdown", lambda: 12.34)
    with pytest.warns(RuntimeWarning, match=r"bf16 matmul is 12\.3× slower than fp32, measured now"):
        assert hardware.resolve_bf16("true") is True
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert hardware.resolve_bf16("true") is True  # native: no warning
    with pytest.raises(ValueError, match="auto, true or false"):
        hardware.resolve_bf16("sometimes")


def test_the_bf16_parameter_takes_auto_true_false():
    from mbmlab.lab import params as P

    assert P.resolve("default")["bf16"] == "auto"
    assert P.resolve("default", {"bf16": "True"})["bf16"] == "true"
    assert P.resolve("default", {"bf16": False})["bf16"] == "false"  # an older run's params.json
    import pytest

    with pytest.raises(P.ParameterError, match="allowed values: auto, true, false"):
        P.resolve("default", {"bf16": "maybe"})


def test_threads_follow_the_usable_cores_unless_the_user_set_them(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setattr(hardware, "usable_cores", lambda: 1)
        assert hardware.set_threads() == 1 == torch.get_num_threads()
        torch.set_num_threads(before)
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert hardware.set_threads() == before  # the user's setting is left alone
    finally:
        torch.set_num_threads(before)


def test_the_profile_names_flags_cores_rates_and_gpu(monkeypatch):
    no_gpu(monkeypatch)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "fma", "avx512_bf16"})
    monkeypatch.setattr(hardware, "matmul_peak", lambda dtype=None, n=1024, repeats=10: 2e9 if n == 256 else 1.5e11)
    out = hardware.profile()
    assert out["cpu flags"] == "avx2 avx512_bf16" and out["bf16 native"] == "yes" and out["gpu"] == "none"
    assert out["fp32 matmul GFLOP/s"] == "150" and out["bf16 matmul GFLOP/s"] == "2.0"
    usable, logical = out["cores (usable / logical)"].split(" / ")
    assert 1 <= int(usable) <= int(logical)
