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


class SeedsFailed(RuntimeError):
    """Some seeds' runs failed; the summary covers the others."""


def write_summary(runs: list[Path], preset: str, seeds: list[int], reports: Path | None = None,
                  folder: Path | None = None) -> Path:
    """``reports/<stamp>-<preset>-seeds/`` (or ``folder``): ``seeds.csv``, ``seeds.json`` and an
    ``index.html`` linking each run."""
    folder = folder or new_run_dir(reports or reports_dir(), label=f"{preset}-seeds")
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
    reading = ""
    if len(runs) > 1:
        from scipy import stats as st

        factor = st.t.ppf(0.975, len(runs) - 1)
        reading = (f"<p>The interval is mean ± {factor:.2f} · std / √{len(runs)} (Student's t with {len(runs) - 1} "
                   f"degree{'s' if len(runs) > 2 else ''} of freedom)" + (
                       ": with so few seeds it is wide and may run past a metric's own bounds (a share below 0 or "
                       "above 1); read it as how far another training may move the number, and a difference "
                       "between configurations as not established" if factor > 4 else "") + ".</p>")
    (folder / "index.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(preset)}: {len(runs)} seeds</title>"
        f"<h1>{html.escape(preset)}: {len(runs)} seeds</h1><ul>{links}</ul>{reading}"
        f"<table><tr><th>metric</th><th>mean ± std (n−1)</th><th>95% t interval of the mean over seeds</th></tr>"
        f"{rows}</table>")
    return folder


def run_seeds(preset: str, overrides: dict | None, seeds: int, *, log=print, num_cpus: float | None = None,
              num_gpus: float = 0, address: str | None = None, run=None, **run_kwargs) -> Path:
    """The series once per seed (``seed`` from the overrides or the preset, then +1, …), each a Ray
    task as in ``mbmlab sweep`` (``num_cpus`` each, default every core here: one after another;
    ``address``: a cluster), then the summary of the seeds that finished. Raises ``SeedsFailed``
    (after writing the summary) when any seed's run failed."""
    from . import params as P
    from .runner import run_series
    from .sweep import Point, execute
    from .tracking import prepare

    first = P.resolve(preset, overrides)["seed"]
    chosen = [first + k for k in range(seeds)]
    reports = Path(run_kwargs.pop("reports", None) or reports_dir()).resolve()
    folder = new_run_dir(reports, label=f"{preset}-seeds")
    points = [Point(dict(overrides or {}, seed=s), label=f"seed={s}") for s in chosen]
    prepare(reports, folder.name, log=log)
    execute(points, preset, folder, run or run_series,
            {k: v for k, v in run_kwargs.items() if v is not None} | {"reports": reports, "experiment": folder.name},
            num_cpus=num_cpus, num_gpus=num_gpus, address=address, log=log)
    ok = [p for p in points if p.status == "ok"]
    runs = [Path(p.run) for p in ok]
    if runs:
        write_summary(runs, preset, [p.overrides["seed"] for p in ok], folder=folder)
        table = summarise(runs)
        log(table[["mean", "std", "ci95_low", "ci95_high"]].round(4).to_string())
        log(f"summary: {folder / 'index.html'}")
    failed = [p for p in points if p.status != "ok"]
    if failed:
        raise SeedsFailed(f"{len(failed)} of {len(points)} seeds failed: " + "; ".join(
            f"{p.label}: {(p.error or '').splitlines()[0] if p.error else p.status}" for p in failed))
    return folder
