"""``mbmlab compare RUN…``: runs side by side — the parameters that differ, each metric with its
95% interval in every run, and which differences are established.

A difference is tested only where two runs answered the same test items and kept them
(``vqa_predictions.csv``, ``spoken_vqa_predictions.csv``, ``asr_predictions.csv``): the paired
test of ``mbmlab.metrics.stats.paired_test`` on those items (images resampled for questions,
clips for WER; a sign-flip permutation p-value), with Holm's correction over every metric and
pair tested at once, each with sign flips enough for that many tests (``permutations_for``). A
difference is flagged when its Holm-adjusted p < 0.05. Everything else —
metrics without per-item files, runs on other test sets — is listed, never flagged: comparing
two runs' separate intervals is unpaired and ignores that ~230 metrics are read at once. One
training per run: a flag says the two *trained models* differ on this test set, not that their
configurations would across seeds (``mbmlab run --seeds``).

Given seed groups instead — the summary folders ``mbmlab run --seeds N`` writes (``seeds.json``
naming each seed's run) — it compares configurations: for every headline metric all their runs
recorded, the difference of the seed means with the t interval over seeds
(``stats.seed_difference``: paired by seed when both groups ran the same seeds, Welch's otherwise),
Holm's correction over every metric and pair tested, flagged where the adjusted p < 0.05.
"""
from __future__ import annotations

import html
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts import CorruptArtifactError, read_metrics
from .report import HEADLINE, STYLE, data_uri, interval


class CompareError(ValueError):
    """A folder that is not a finished or partial run (no run.json / metrics.json)."""


@dataclass
class Run:
    path: Path
    run: dict
    metrics: dict
    params: dict

    @property
    def name(self) -> str:
        return self.path.name


def read_run(path: Path) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise CompareError(f"{path} is not a folder; give run folders such as reports/<run-id>")
    missing = [n for n in ("run.json", "metrics.json") if not (path / n).exists()]
    if missing:
        raise CompareError(f"{path} has no {' or '.join(missing)}: not a run that recorded metrics")
    run = json.loads((path / "run.json").read_text())
    params = json.loads((path / "params.json").read_text()) if (path / "params.json").exists() else run.get("params", {})
    try:
        metrics = read_metrics(path)
    except CorruptArtifactError as err:
        raise CompareError(str(err)) from None
    return Run(path, run, metrics, params)


def param_table(runs: list[Run]) -> pd.DataFrame:
    """One row per parameter whose value is not the same in every run (the preset included)."""
    keys = ["preset"] + sorted({k for r in runs for k in r.params})
    rows = []
    for key in keys:
        values = [r.run.get("preset") if key == "preset" else r.params.get(key) for r in runs]
        if len({json.dumps(v, sort_keys=True) for v in values}) > 1:
            rows.append({"parameter": key, **{r.name: v for r, v in zip(runs, values)}})
    return pd.DataFrame(rows, columns=["parameter"] + [r.name for r in runs], dtype=object)  # ints stay ints


# per-item files a run's 04 writes: metric → (file, item key, cluster column, how to score); the
# key holds the item's content too, so two test sets that reuse ids for other items never pair
ITEM_FILES = {
    "vqa/exact_match": ("vqa_predictions.csv", ["image_id", "question", "answer"], "image_id", "correct"),
    "spoken_vqa/exact_match": ("spoken_vqa_predictions.csv", ["clip_id", "question", "answer"], "image_id", "correct"),
    "asr/wer": ("asr_predictions.csv", ["clip_id", "reference"], "clip_id", "wer"),
}


def item_scores(run: Run, metric: str) -> pd.DataFrame | None:
    """A run's per-item scores for ``metric`` (columns key…, cluster, score, weight), or None."""
    from ..metrics.intervals import answers_correct, per_clip_edits

    file, keys, cluster, how = ITEM_FILES[metric]
    path = run.path / file
    if not path.exists():
        return None
    frame = pd.read_csv(path, keep_default_na=False)
    if how == "wer":
        edits, words = per_clip_edits(list(frame["reference"].astype(str)), list(frame["prediction"].astype(str)), "wer")
        return frame[keys].assign(cluster=frame[cluster], score=edits, weight=words)
    score = answers_correct(frame["prediction"].astype(str), frame["answer"].astype(str))
    return frame[keys].assign(cluster=frame[cluster], score=score, weight=1.0,
                              question_type=frame.get("question_type", ""))


def permutations_for(tests: int, alpha: float = 0.05) -> int:
    """Sign flips enough for ``tests`` Holm-corrected tests: a permutation p-value is at least
    1 / (1 + flips), and Holm multiplies the smallest by the number of tests, so with 1,000 flips
    and 90 tests (a sweep of six runs) nothing could ever pass 0.05. Twenty times m / α puts the
    smallest adjusted p at α / 20 (at least the 1,000 of every other test)."""
    from ..metrics.bootstrap import RESAMPLES

    return max(RESAMPLES, int(np.ceil(20 * tests / alpha)))


def paired_tests(runs: list[Run], seed: int = 0) -> pd.DataFrame:
    """Every paired test the runs allow: one row per (metric, pair of runs sharing the test items)
    with the difference (first − second), its interval, p and Holm's adjusted p over all rows."""
    from ..metrics.stats import holm, paired_test

    planned = []  # (metric, pair, the paired items) of every test, so their number is known first
    for metric, (_, keys, _, how) in ITEM_FILES.items():
        scores = [item_scores(r, metric) for r in runs]
        for i in range(len(runs)):
            for j in range(i + 1, len(runs)):
                a, b = scores[i], scores[j]
                if a is None or b is None or len(a) != len(b):
                    continue
                both = a.merge(b, on=keys, suffixes=("_a", "_b"))
                if len(both) != len(a) or not len(both):
                    continue  # other test items: nothing to pair
                parts = {metric: both}
                if how == "correct":
                    parts |= {f"{metric}/{t}": part for t, part in both.groupby("question_type_a") if t}
                planned += [(name, f"{runs[i].name} vs {runs[j].name}", part) for name, part in parts.items()]
    permutations = permutations_for(len(planned))
    rows = [{"metric": name, "pair": pair, "items": len(part)}
            | paired_test(part["score_a"], part["score_b"], clusters=part["cluster_a"], denominators=part["weight_a"],
                          seed=seed, n_permutations=permutations)
            for name, pair, part in planned]
    table = pd.DataFrame(rows, columns=["metric", "pair", "items", "difference", "ci95_low", "ci95_high", "p_value"])
    table["p_holm"] = holm(table["p_value"]) if len(table) else []
    return table


def metric_table(runs: list[Run], tests: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per metric recorded by at least one run (headline metrics first): each run's
    value and interval, ``tested`` (the pairs a paired test compared) and ``differs`` naming the
    pairs whose difference is established (Holm-adjusted p < 0.05; see ``paired_tests``)."""
    tests = paired_tests(runs) if tests is None else tests
    names = {n for r in runs for n in r.metrics if not n.endswith(("/ci95_low", "/ci95_high"))} | set(tests["metric"])
    order = [n for n in HEADLINE if n in names] + sorted(names - set(HEADLINE))
    rows = []
    for name in order:
        row = {"metric": name, "shared": all(name in r.metrics for r in runs)}
        cis = []
        for r in runs:
            ci = interval(r.metrics, name)
            row[r.name] = r.metrics.get(name)
            row[f"{r.name} ci95"] = ci
            cis.append(ci)
        mine = tests[tests["metric"] == name]
        row["tested"] = len(mine)
        row["differs"] = "; ".join(f"{t.pair} ({t.difference:+.4g} [{t.ci95_low:+.4g}, {t.ci95_high:+.4g}], "
                                   f"Holm p {t.p_holm:.3g})" for t in mine.itertuples() if t.p_holm < 0.05)
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(value, ci) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    return f"{value:.4g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")


def _letter(i: int) -> str:
    return chr(65 + i) if i < 26 else f"R{i + 1}"


def printable(runs: list[Run], params: pd.DataFrame, metrics: pd.DataFrame, limit: int | None = None) -> str:
    """The comparison as text: the parameters that differ, then the metrics (headline first)."""
    out = io.StringIO()
    out.write("runs: " + ", ".join(f"{_letter(i)} = {r.name}" for i, r in enumerate(runs)) + "\n\n")
    letters = {r.name: _letter(i) for i, r in enumerate(runs)}
    if len(params):
        out.write("parameters that differ:\n")
        out.write(params.rename(columns=letters).to_string(index=False) + "\n\n")
    else:
        out.write("the runs have the same parameters\n\n")
    shown = metrics.head(limit) if limit else metrics
    table = pd.DataFrame({"metric": shown["metric"], **{letters[r.name]: [_cell(v, c) for v, c in
                                                                          zip(shown[r.name], shown[f"{r.name} ci95"])]
                                                        for r in runs},
                          "differs (paired, Holm)": [d.replace(" vs ", "≠") for d in shown["differs"]]})
    for name, letter in letters.items():
        table["differs (paired, Holm)"] = table["differs (paired, Holm)"].str.replace(name, letter, regex=False)
    out.write(table.to_string(index=False) + "\n")
    out.write(summary_line(metrics) + "\n")
    if limit and len(metrics) > limit:
        out.write(f"… {len(metrics) - limit} more metrics in the HTML page\n")
    return out.getvalue()


def summary_line(metrics: pd.DataFrame) -> str:
    tested = int((metrics["tested"] > 0).sum())
    flagged = int((metrics["differs"] != "").sum())
    return (f"{flagged} of {tested} tested metrics differ (paired tests on the same test items, Holm-corrected "
            f"over all {int(metrics['tested'].sum())} tests); the other {len(metrics) - tested} metrics were not "
            "tested (no per-item predictions both runs share)")


def plot_metrics(runs: list[Run], metrics: pd.DataFrame, limit: int = 12):
    """Grouped bars of the shared metrics with intervals (headline metrics first)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    shared = metrics[metrics["shared"] & metrics["metric"].isin(HEADLINE)].head(limit)
    if shared.empty:
        shared = metrics[metrics["shared"]].head(limit)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(shared) * max(1, len(runs)) / 2 + 3), 4))
    x = np.arange(len(shared))
    width = 0.8 / max(1, len(runs))
    for k, r in enumerate(runs):
        values = shared[r.name].astype(float).to_numpy()
        cis = list(shared[f"{r.name} ci95"])
        err = np.array([[v - c[0], c[1] - v] if c else [0, 0] for v, c in zip(values, cis)]).T
        ax.bar(x + k * width - 0.4 + width / 2, values, width, yerr=err if len(values) else None, capsize=2,
               label=r.name, color=f"C{k}")
    ax.set_xticks(x, [m.replace("/", "/\n", 1) for m in shared["metric"]], rotation=60, ha="right", fontsize=7)
    ax.set_title("metrics shared by the runs (bars: 95% intervals)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def write_page(runs: list[Run], out: Path, title: str | None = None, notes: list[str] = (), figures: list[Path] = ()) -> Path:
    """``out/index.html`` (self-contained: the plot is inlined) and ``out/compare.csv``;
    ``notes``: lines shown above the tables (a sweep lists its failed combinations there)."""
    out = Path(out)
    params, metrics = param_table(runs), metric_table(runs)
    csv = metrics.copy()
    for r in runs:
        ci = csv.pop(f"{r.name} ci95")
        csv[f"{r.name}/ci95_low"] = [c[0] if c else None for c in ci]
        csv[f"{r.name}/ci95_high"] = [c[1] if c else None for c in ci]
    csv.to_csv(out / "compare.csv", index=False)
    figure = plot_metrics(runs, metrics)
    figure.savefig(out / "compare.png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    e = html.escape
    letter = {r.name: _letter(i) for i, r in enumerate(runs)}
    head = "".join(f"<th title='{e(r.name)}'>{letter[r.name]}</th>" for r in runs)

    def pairs(text: str) -> str:
        for name, mark in letter.items():
            text = text.replace(name, mark)
        return text.replace(" vs ", "≠")

    runs_rows = "".join(
        f"<tr><td><b>{letter[r.name]}</b></td><td>{e(r.name)}</td><td>{e(str(r.run.get('preset')))}</td><td class='{e(str(r.run.get('status')))}'>"
        f"{e(str(r.run.get('status')))}</td><td class='num'>{(r.run.get('total_seconds') or 0):.1f}</td>"
        f"<td><code>{e(str(r.run.get('environment', {}).get('git commit', '')))}</code></td>"
        f"<td><a href='{e((r.path / 'index.html').resolve().as_uri())}'>index.html</a></td></tr>" for r in runs)
    param_rows = "".join("<tr><td>" + e(str(row["parameter"])) + "</td>" +
                         "".join(f"<td>{e(json.dumps(row[r.name]))}</td>" for r in runs) + "</tr>"
                         for row in params.to_dict("records")) or f"<tr><td colspan='{len(runs) + 1}'>none</td></tr>"
    def differs(row: dict) -> str:
        """The flagged pairs (A≠B, …), each pair's difference, interval and p folded beneath."""
        if not row["differs"]:
            return "no" if row["tested"] else "not tested"
        found = pairs(row["differs"]).split("; ")
        return (f"<details><summary>{e(', '.join(f.split(' (')[0] for f in found))}</summary>"
                f"{'<br>'.join(e(f) for f in found)}</details>")

    metric_rows = "".join(
        "<tr><td>" + e(row["metric"]) + "</td>" +
        "".join(f"<td class='num'>{e(_cell(row[r.name], row[f'{r.name} ci95']))}</td>" for r in runs) +
        f"<td class='{'yes' if row['differs'] else ''}' style='min-width: 24em'>{differs(row)}</td></tr>"
        for row in metrics.to_dict("records"))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mbmlab compare: {len(runs)} runs</title>
<style>{STYLE}</style></head><body>
<h1>{e(title or f"Comparison of {len(runs)} runs")}</h1>
{"".join(f"<p class='{'failed' if n.startswith('failed') else ''}'>{e(n)}</p>" for n in notes)}
{"".join(f"<figure><img src='{data_uri(f)}' alt='{e(Path(f).stem)}'><figcaption>{e(Path(f).stem)}</figcaption></figure>" for f in figures)}
<table><tr><th></th><th>run</th><th>preset</th><th>status</th><th>seconds</th><th>commit</th><th>report</th></tr>{runs_rows}</table>
<h2>Parameters that differ</h2>
<table><tr><th>parameter</th>{head}</tr>{param_rows}</table>
<h2>Metrics</h2>
<p>{e(summary_line(metrics))}. A difference is flagged where its paired test's Holm-adjusted
p &lt; 0.05; "no" does not show the values equal. One training per run: a flag is about these
two trained models on this test set, not about their configurations across seeds.</p>
<figure><img src="{data_uri(out / 'compare.png')}" alt="shared metrics"><figcaption>shared metrics, headline first</figcaption></figure>
<div style="overflow-x: auto"><table><tr><th>metric</th>{head}<th>differs (paired test, Holm)</th></tr>{metric_rows}</table></div>
</body></html>
"""
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


@dataclass
class SeedGroup:
    path: Path
    seeds: list[int]
    runs: list[Run]

    @property
    def name(self) -> str:
        return self.path.name


def read_seed_group(path: Path) -> SeedGroup:
    """A ``mbmlab run --seeds`` summary folder: its seeds and their runs (each must have metrics)."""
    record = json.loads((Path(path) / "seeds.json").read_text())
    runs = []
    for run in record["runs"]:
        folder = Path(run)
        if not folder.is_dir():  # the reports folder moved as a whole: the run sits beside the group
            folder = Path(path).parent / folder.name
        runs.append(read_run(folder))
    return SeedGroup(Path(path), list(record["seeds"]), runs)


def seed_tests(groups: list[SeedGroup]) -> pd.DataFrame:
    """One row per (headline metric every run of both groups recorded, pair of groups): each
    group's seed mean, the difference (first − second) with its t interval over seeds and p, and
    Holm's adjusted p over all rows; ``established`` = adjusted p < 0.05."""
    from ..metrics.stats import holm, seed_difference

    rows = []
    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            a, b = groups[i], groups[j]
            shared = set.intersection(*(set(r.metrics) for r in a.runs + b.runs))
            paired = sorted(a.seeds) == sorted(b.seeds)
            runs_a = [r for _, r in sorted(zip(a.seeds, a.runs), key=lambda t: t[0])]  # seed order
            runs_b = [r for _, r in sorted(zip(b.seeds, b.runs), key=lambda t: t[0])]
            for metric in [m for m in HEADLINE if m in shared]:
                va, vb = [r.metrics[metric] for r in runs_a], [r.metrics[metric] for r in runs_b]
                test = seed_difference(va, vb, paired=paired)
                rows.append({"metric": metric, "pair": f"{a.name} vs {b.name}", "seeds": f"{len(va)}/{len(vb)}",
                             "test": "paired t" if paired else "Welch t",
                             "first": sum(va) / len(va), "second": sum(vb) / len(vb),
                             **{k: v for k, v in test.items() if k != "seeds"}})
    table = pd.DataFrame(rows, columns=["metric", "pair", "seeds", "test", "first", "second", "difference", "ci95_low",
                                        "ci95_high", "p_value"])
    table["p_holm"] = holm(table["p_value"]) if len(table) else []
    table["established"] = table["p_holm"] < 0.05
    return table


def seed_summary_line(table: pd.DataFrame) -> str:
    return (f"{int(table['established'].sum())} of {len(table)} tests differ across seeds (headline metrics every "
            f"run recorded; t intervals over seeds, Holm-corrected over all {len(table)})")


def compare_seed_groups(groups: list[SeedGroup], out: Path) -> str:
    """Write ``out/compare.csv`` and ``out/index.html`` for seed groups; returns the printed text."""
    table = seed_tests(groups)
    table.to_csv(out / "compare.csv", index=False)
    e = html.escape
    shown = table.assign(verdict=table["established"].map({True: "established", False: "not established"}))
    cells = shown.assign(difference=[f"{d:+.4g} [{lo:+.4g}, {hi:+.4g}]" for d, lo, hi in
                                     zip(table["difference"], table["ci95_low"], table["ci95_high"])])
    columns = ["metric", "pair", "seeds", "test", "first", "second", "difference", "p_holm", "verdict"]
    rows = "".join("<tr>" + "".join(f"<td>{e(str(round(r[c], 4) if isinstance(r[c], float) else r[c]))}</td>"
                                    for c in columns) + "</tr>" for r in cells.to_dict("records"))
    groups_rows = "".join(f"<li>{e(g.name)}: seeds {g.seeds} — " + ", ".join(
        f"<a href='{e((r.path / 'index.html').resolve().as_uri())}'>{e(r.name)}</a>" for r in g.runs) + "</li>"
        for g in groups)
    (out / "index.html").write_text(
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>mbmlab compare: {len(groups)} seed groups"
        f"</title><style>{STYLE}</style></head><body><h1>Comparison of {len(groups)} configurations over seeds</h1>"
        f"<ul>{groups_rows}</ul><p>{e(seed_summary_line(table))}.</p><table><tr>"
        + "".join(f"<th>{e(c)}</th>" for c in columns) + f"</tr>{rows}</table></body></html>", encoding="utf-8")
    text = cells[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}")
    return text + "\n" + seed_summary_line(table)


def compare(paths: list[Path], reports: Path | None = None, log=print) -> Path:
    """Load the runs (or seed groups), print the comparison, write ``reports/<stamp>-compare/``;
    returns its folder."""
    from .paths import new_run_dir

    if len(paths) < 2:
        raise CompareError("give at least two run folders")
    grouped = [(Path(p) / "seeds.json").exists() for p in paths]
    if any(grouped):
        if not all(grouped):
            raise CompareError("give either run folders or seed groups (mbmlab run --seeds folders), not both")
        groups = [read_seed_group(p) for p in paths]
        out = new_run_dir(reports, label="compare")
        log(compare_seed_groups(groups, out))
        log(f"comparison: {out / 'index.html'}")
        return out
    runs = [read_run(p) for p in paths]
    if len({r.path.resolve() for r in runs}) < len(runs):
        raise CompareError("a run is named twice")
    out = new_run_dir(reports, label="compare")
    write_page(runs, out)
    log(printable(runs, param_table(runs), metric_table(runs), limit=40))
    log(f"comparison: {out / 'index.html'}")
    return out
