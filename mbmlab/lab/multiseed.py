"""``mbmlab run --seeds N``: the series N times with seeds s, s+1, …, s+N−1 (each a normal run
folder), then a summary folder with each metric's mean across the seeds, its standard deviation and the 95% t interval
of the mean over seeds (mean ± t(n−1, 0.975)·std/√n: Student's t, the seeds as independent
trainings; none with one seed).

One run's bootstrap interval says how much the number would move with other *test items*; the
spread across seeds says how much it moves with another *training* (initialisation, data order).
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from ..artifacts import read_metrics
from .paths import new_run_dir, reports_dir


def summarise(runs: list[Path]) -> pd.DataFrame:
    """One row per metric that every run has (interval bounds left out): ``mean``, ``std`` (sample
    standard deviation, n−1; 0 for one run), ``n``, ``ci95_low`` / ``ci95_high`` (the t interval of
    the mean over seeds; NaN for one run) and each run's value."""
    per_run = {Path(r).name: read_metrics(r) for r in runs}
    shared = sorted(set.intersection(*(set(m) for m in per_run.values()))) if per_run else []
    shared = [name for name in shared if "/ci95_" not in name]
    values = pd.DataFrame({run: [metrics[name] for name in shared] for run, metrics in per_run.items()},
                          index=pd.Index(shared, name="metric"))
    from ..metrics.stats import seed_mean_interval

    n = values.shape[1]
    out = pd.DataFrame({"mean": values.mean(axis=1), "std": values.std(axis=1, ddof=1).fillna(0.0), "n": n})
    bounds = [seed_mean_interval(row)[1:] for row in values.to_numpy()]
    out["ci95_low"] = [low for low, _ in bounds] if bounds else []
    out["ci95_high"] = [high for _, high in bounds] if bounds else []
    return pd.concat([out, values], axis=1)


def write_summary(runs: list[Path], preset: str, seeds: list[int], reports: Path | None = None) -> Path:
    """``reports/<stamp>-<preset>-seeds/``: ``seeds.csv``, ``seeds.json`` and an ``index.html``
    linking each run."""
    folder = new_run_dir(reports or reports_dir(), label=f"{preset}-seeds")
    table = summarise(runs)
    table.to_csv(folder / "seeds.csv")
    (folder / "seeds.json").write_text(json.dumps(
        {"preset": preset, "seeds": seeds, "runs": [str(r) for r in runs],
         "metrics": {name: {"mean": row["mean"], "std": row["std"], "n": int(row["n"]),
                            "ci95_low": None if pd.isna(row["ci95_low"]) else row["ci95_low"],
                            "ci95_high": None if pd.isna(row["ci95_high"]) else row["ci95_high"]}
                     for name, row in table.iterrows()}}, indent=1))
    links = "".join(f'<li>seed {s}: <a href="../{html.escape(Path(r).name)}/index.html">{html.escape(Path(r).name)}</a></li>'
                    for s, r in zip(seeds, runs))
    def seed_interval(row) -> str:
        return "—" if pd.isna(row["ci95_low"]) else f"[{row['ci95_low']:.4f}, {row['ci95_high']:.4f}]"

    rows = "".join(f"<tr><td>{html.escape(name)}</td><td>{row['mean']:.4f} ± {row['std']:.4f}</td>"
                   f"<td>{seed_interval(row)}</td></tr>" for name, row in table.iterrows())
    (folder / "index.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(preset)}: {len(runs)} seeds</title>"
        f"<h1>{html.escape(preset)}: {len(runs)} seeds</h1><ul>{links}</ul>"
        f"<table><tr><th>metric</th><th>mean ± std (n−1)</th><th>95% t interval of the mean over seeds</th></tr>"
        f"{rows}</table>")
    return folder


def run_seeds(preset: str, overrides: dict | None, seeds: int, *, log=print, **run_kwargs) -> Path:
    """The series once per seed (``seed`` from the overrides or the preset, then +1, …), then the summary."""
    from . import params as P
    from .runner import run_series

    first = P.resolve(preset, overrides)["seed"]
    chosen = [first + k for k in range(seeds)]
    runs = [run_series(preset, dict(overrides or {}, seed=s), log=log, **run_kwargs) for s in chosen]
    folder = write_summary(runs, preset, chosen, run_kwargs.get("reports"))
    table = summarise(runs)
    log(table[["mean", "std", "ci95_low", "ci95_high"]].round(4).to_string())
    log(f"summary: {folder / 'index.html'}")
    return folder
