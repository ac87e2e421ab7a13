"""The hardware line of run.json (mbmlab.lab.hardware)."""
from mbmlab.lab import hardware, runner


def test_matmul_peak_counts_two_n_cubed_flops_per_timed_matmul(monkeypatch):
    clock = iter([0.0, 0.5, 1.0, 1.25, 2.0, 3.0])  # three timed matmuls: 0.5 s, 0.25 s, 1 s
    monkeypatch.setattr(hardware.time, "perf_counter", lambda: next(clock))
    assert hardware.matmul_peak(n=8, repeats=3) == 2 * 8**3 / 0.25  # the best of the three


def test_the_environment_carries_the_cpu_and_its_measured_matmul_rate():
    env = runner.environment()
    assert env["cpu"] and float(env["fp32 matmul GFLOP/s"]) > 0
