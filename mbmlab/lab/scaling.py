"""The scaling study (the seed's §8.1; presets ``scaling-cpu`` / ``scaling-gpu``): validation loss
of the language model against its training compute over a sweep of model size × training tokens
(epochs over the same data, so every run is measured on the same validation lines), and a fitted
power law L(C) = a·C^(−b) + c.

- Compute C = 6·(N + H)·D FLOPs (Kaplan et al. 2020, §2.1: forward + backward ≈ 6 FLOPs per
  non-embedding parameter N per training token D; H the output head's width × vocabulary, which
  Kaplan et al. leave out but which is half the compute of the narrowest models here), recorded by
  02_train as ``lm/train_flops``.
- Loss L = validation cross-entropy in nats per predicted token = log(``lm/perplexity``), the
  perplexity being exp(total NLL / total predicted tokens).
- The fit uses the compute frontier, as Hoffmann et al. 2022 (approach 1) fit the envelope of
  their training curves: a point is kept when no run with less or equal compute reached a lower
  loss; the others are listed as left out, with that reason. The law is fitted by nonlinear least
  squares in L (``scipy.optimize.curve_fit``, trust-region reflective, bounds a > 0, 0 ≤ b ≤ 10,
  0 ≤ c ≤ the lowest kept loss; started from the best straight line of log(L − c) on log C over a
  grid of c), with 95% intervals of a, b, c from a bootstrap over the kept points (resampled with
  replacement, refitted; resamples with fewer than 3 distinct points skipped). A c on one of its
  bounds (0, or the lowest loss) means the data do not pin the irreducible loss down: the fit says
  so (``c_on_bound``) and its exponent is then not a measurement. Fit quality: R² of L on the kept points.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts import read_metrics


@dataclass
class PowerLaw:
    a: float
    b: float  # the exponent: L falls as C^(−b)
    c: float  # the irreducible loss
    r2: float
    used: list[int]  # row positions of the points fitted
    left_out: dict[int, str] = field(default_factory=dict)  # row position → why
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # a, b, c → bootstrap 95%
    resamples: int = 0  # bootstrap refits that succeeded
    c_on_bound: bool = False  # c at 0 or at the lowest loss: the data do not determine it

    def __call__(self, compute):
        return self.a * np.asarray(compute, dtype=float) ** (-self.b) + self.c

    def describe(self) -> str:
        b = self.intervals.get("b")
        text = (f"L(C) = {self.a:.4g}·C^(−{self.b:.4f}) + {self.c:.4f}  (R² {self.r2:.4f}, {len(self.used)} points"
                + (f"; b 95% [{b[0]:.3f}, {b[1]:.3f}] over {self.resamples} bootstrap refits" if b else "") + ")")
        return text + ("  — c sits on a bound of its range: the irreducible loss is not determined, and the "
                       "exponent is not a measurement" if self.c_on_bound else "")


def frontier(compute, loss) -> list[int]:
    """Positions of the points no cheaper-or-equal run beat: the lowest loss so far, by compute."""
    order = np.argsort(np.asarray(compute, dtype=float), kind="stable")
    kept, best = [], math.inf
    for i in order:
        if loss[i] < best:
            kept.append(int(i))
            best = loss[i]
    return sorted(kept, key=lambda i: compute[i])


def _start(x: np.ndarray, y: np.ndarray, grid: int = 200) -> tuple[float, float, float]:
    """(log a, b, c) of the best line log(L − c) = log a − b·log C over a grid of c: curve_fit's start."""
    best = None
    for c in np.linspace(0.0, y.min(), grid, endpoint=False):
        slope, intercept = np.polyfit(x, np.log(y - c), 1)
        error = float(np.sum((np.exp(intercept + slope * x) + c - y) ** 2))
        if best is None or error < best[0]:
            best = (error, intercept, -slope, c)
    return best[1], best[2], best[3]


def _fit(x: np.ndarray, y: np.ndarray, start=None) -> tuple[float, float, float]:
    """(a, b, c) of L = a·C^(−b) + c by nonlinear least squares in L; x = log C. The model is
    written around the mean log compute (a·e^(−b·x̄)·e^(−b·(x − x̄))) so the parameters are of
    similar scale for the optimiser."""
    import warnings

    from scipy.optimize import OptimizeWarning, curve_fit

    centre = float(x.mean())
    log_a, b, c = _start(x, y) if start is None else start
    scale0 = math.exp(log_a - b * centre)  # a at the centre
    top = float(y.min())

    def model(xs, scale, b, c):
        return scale * np.exp(-b * (xs - centre)) + c

    with warnings.catch_warnings():  # 3 points for 3 parameters leave no covariance; it is not used
        warnings.simplefilter("ignore", OptimizeWarning)
        (scale, b, c), _ = curve_fit(model, x, y, p0=[scale0, min(max(b, 1e-6), 10.0), min(max(c, 0.0), top * (1 - 1e-9))],
                                     bounds=([1e-12, 0.0, 0.0], [np.inf, 10.0, top]), method="trf", maxfev=20000)
    return scale * math.exp(b * centre), float(b), float(c)


def fit_power_law(compute, loss, resamples: int = 200, seed: int = 0) -> PowerLaw:
    """L(C) = a·C^(−b) + c fitted on the compute frontier (module docstring); needs 3 frontier points."""
    compute, loss = np.asarray(compute, dtype=float), np.asarray(loss, dtype=float)
    if len(compute) != len(loss) or np.any(compute <= 0) or not np.all(np.isfinite(loss)):
        raise ValueError("compute must be positive and losses finite, one of each per point")
    used = frontier(compute, loss)
    left_out = {i: "not on the compute frontier: a run with less or equal compute reached a lower loss"
                for i in range(len(loss)) if i not in used}
    if len(used) < 3:
        raise ValueError(f"{len(used)} points on the compute frontier; a three-parameter power law needs 3 or more "
                         f"(sweep more model and data sizes)")
    x, y = np.log(compute[used]), loss[used]
    a, b, c = _fit(x, y)
    error = float(np.sum((a * np.exp(-b * x) + c - y) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - error / total if total > 0 else 1.0
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        idx = rng.integers(0, len(x), len(x))
        if len(np.unique(x[idx])) < 3:
            continue
        try:
            draws.append(_fit(x[idx], y[idx]))
        except (RuntimeError, ValueError):  # curve_fit found no optimum on this resample
            continue
    intervals = {}
    if draws:
        values = np.array(draws)
        for k, name in enumerate("abc"):
            low, high = np.percentile(values[:, k], [2.5, 97.5])
            intervals[name] = (float(low), float(high))
    tolerance = 1e-3 * float(y.min())
    on_bound = c <= tolerance or c >= float(y.min()) - tolerance
    return PowerLaw(a, b, c, r2, used, left_out, intervals, len(draws), bool(on_bound))


def points(runs: list[Path]) -> pd.DataFrame:
    """One row per finished run of the sweep: its size parameters, N, D, C and L."""
    rows = []
    for run in runs:
        run = Path(run)
        metrics = read_metrics(run)
        params = json.loads((run / "params.json").read_text())
        if "lm/train_flops" not in metrics or "lm/perplexity" not in metrics:
            raise ValueError(f"{run} has no lm/train_flops or lm/perplexity: not a run of 02_train from this version")
        rows.append({"run": run.name, "lm_dim": params.get("lm_dim"), "lm_layers": params.get("lm_layers"),
                     "lm_epochs": params.get("lm_epochs"), "max_train_images": params.get("max_train_images"),
                     "parameters": metrics["lm/non_embedding_parameters"], "tokens": metrics["lm/train_tokens"],
                     "compute": metrics["lm/train_flops"], "loss": math.log(metrics["lm/perplexity"])})
    return pd.DataFrame(rows)


def analyse(table: pd.DataFrame) -> tuple[pd.DataFrame, PowerLaw]:
    """The fit over the sweep's points; the table gains ``fitted`` and ``used`` / ``left out`` columns."""
    law = fit_power_law(table["compute"].to_numpy(), table["loss"].to_numpy())
    table = table.assign(fitted=law(table["compute"]), used=[i in law.used for i in range(len(table))],
                         left_out=[law.left_out.get(i, "") for i in range(len(table))])
    return table, law


def plot_law(table: pd.DataFrame, law: PowerLaw):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for dim, part in table.groupby("lm_dim"):
        used = part[part["used"]]
        rest = part[~part["used"]]
        ax.scatter(used["compute"], used["loss"], label=f"lm_dim {dim}", zorder=3)
        ax.scatter(rest["compute"], rest["loss"], facecolors="none", edgecolors="grey", zorder=3)
    grid = np.geomspace(table["compute"].min() / 1.5, table["compute"].max() * 1.5, 100)
    ax.plot(grid, law(grid), color="black", lw=1, label=law.describe().split("  ")[0])
    ax.axhline(law.c, color="grey", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("training compute C = 6·(N + head)·D (FLOPs)")
    ax.set_ylabel("validation loss (nats / token)")
    b = law.intervals.get("b")
    ax.set_title(f"exponent b = {law.b:.3f}" + (f" [{b[0]:.3f}, {b[1]:.3f}]" if b else "") + f", R² = {law.r2:.3f}"
                 + ("; c on a bound: not determined" if law.c_on_bound else "") + "; hollow: off the frontier", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fit_and_write(folder: Path, runs: list[Path]) -> tuple[pd.DataFrame, PowerLaw]:
    """``scaling.csv``, ``scaling.json`` (the law, its exponent, fit quality, the points left out)
    and ``scaling.png`` in the sweep folder."""
    table, law = analyse(points(runs))
    table.to_csv(folder / "scaling.csv", index=False)
    (folder / "scaling.json").write_text(json.dumps(
        {"law": law.describe(), "a": law.a, "b": law.b, "c": law.c, "r2": law.r2,
         "intervals": law.intervals, "bootstrap_refits": law.resamples, "c_on_bound": law.c_on_bound,
         "used": [table["run"][i] for i in law.used],
         "left_out": {table["run"][i]: why for i, why in law.left_out.items()}}, indent=1))
    import matplotlib.pyplot as plt

    figure = plot_law(table, law)
    figure.savefig(folder / "scaling.png", dpi=100, bbox_inches="tight")
    plt.close(figure)  # a sweep must not keep its figures open
    return table, law
