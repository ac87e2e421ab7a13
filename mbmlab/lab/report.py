"""The run's ``index.html``: headline metrics with their baselines, parameters, environment, a
section per notebook (the run folder's files themselves: ``mbmlab.artifacts``)."""
from __future__ import annotations

import json
from pathlib import Path

import jinja2

from ..artifacts import read_metrics

HEADLINE = ("vqa/exact_match", "vqa/exact_match/colour", "vqa/exact_match/shape", "vqa/exact_match/yes/no",
            "vqa/blind_questions/share",  # the share of questions answered alike whatever the image (0 for a model that reads)
            "baseline/majority/vqa/exact_match", "baseline/majority_by_type/vqa/exact_match",
            "baseline/blind/vqa/exact_match", "baseline/image_only/vqa/exact_match", "baseline/random_init/vqa/exact_match",
            "spoken_vqa/exact_match", "spoken_vqa/typed_exact_match", "spoken_vqa/cascade/exact_match",
            "spoken_vqa/cascade_minus_typed/exact_match",
            "explain/object_share", "explain/object_share/randomised", "explain/object_area", "asr/wer", "asr/cer",
            "asr/wer/seen_voices", "asr/wer/heldout_voices", "ctc/audio/wer", "spoken_vqa/exact_match/heldout_voices",
            "caption/exact_match", "baseline/majority/caption/exact_match", "caption/BLEU-3", "caption/BLEU-4",
            "caption/METEOR", "caption/ROUGE-L", "caption/CIDEr", "lm/perplexity", "align/image/recall@1", "baseline/random_init/align/image/recall@1",
            "align/audio/recall@1", "baseline/random_init/align/audio/recall@1",
            "translated_vqa/exact_match", "translated_vqa/english_exact_match",
            "translate/bleu", "translate/chrf", "translate/probe/colour", "translate/probe/shape",
            "speech_translate/bleu", "speech_translate/cascade/bleu", "speech_translate/cascade_with_image/bleu")


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.ok { color: #176f2c; } .failed, .interrupted { color: #b00020; font-weight: bold; } .pending { color: #888; }
.yes { color: #b00020; font-weight: bold; }
figure { margin: 0.8em 0 1.6em; } figure img { display: block; max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
details { margin: 0.5em 0 1.5em; } summary { cursor: pointer; font-weight: 600; }
nav a { margin-right: 1em; }
"""

_ENV = jinja2.Environment(autoescape=True)
_ENV.filters["num"] = lambda v, f="%.4f": "" if v is None else f % v
_ENV.filters["ci"] = lambda ci, f="%.4f": "" if not ci else f"[{f % ci[0]}, {f % ci[1]}]"

_INDEX = _ENV.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mbmlab run {{ run.run_id }}</title>
<style>{{ style }}</style></head><body>
<h1>mbmlab run <code>{{ run.run_id }}</code></h1>
<p>Preset <b>{{ run.preset }}</b> · started {{ run.started }} · status
<span class="{{ run.status }}">{{ run.status }}</span>
{% if run.total_seconds is not none %}· {{ '%.1f' % run.total_seconds }} s in all{% endif %}
{% if run.environment.get('git commit') %}· commit <code>{{ run.environment['git commit'] }}</code>{% endif %}</p>
{% if run.get('from') %}<p>Started from run <code>{{ run['from'].run }}</code> (<code>mbmlab run --from</code>):
{{ run['from'].taken|join(', ') }} taken from it as they were;
{% for name, change in run['from'].params.items() %}{{ name }} {{ change[0] }} → {{ change[1] }}{% if not loop.last %}, {% endif %}{% endfor %}.</p>{% endif %}
{% if run.error %}<pre class="failed">{{ run.error }}</pre>{% endif %}
<nav>{% for nb in sections %}<a href="#{{ nb.name }}">{{ nb.name }}</a>{% endfor %}<a href="#metrics">all metrics</a>
{% if trainings %}<a href="#trainings">trainings</a>{% endif %}<a href="#parameters">parameters</a><a href="#environment">environment</a></nav>
<h2>Summary</h2>
{% if summary %}<table><tr><th>metric</th><th>value</th><th>95% interval</th><th>baselines (value [95% interval])</th></tr>
{% for row in summary %}<tr><td>{{ row.name }}</td><td class="num">{{ row.value|num }}</td>
<td class="num">{{ row.ci|ci }}</td>
<td>{% for kind, value, ci in row.baselines %}{{ kind }} {{ value|num }} {{ ci|ci }}{% if not loop.last %}<br>{% endif %}{% endfor %}</td></tr>
{% endfor %}</table>{% else %}<p>No headline metric recorded.</p>{% endif %}
<h2>Notebooks</h2>
<table><tr><th>notebook</th><th>status</th><th>seconds</th><th>executed notebook</th></tr>
{% for nb in run.notebooks %}<tr><td><a href="#{{ nb.name }}">{{ nb.name }}</a></td><td class="{{ nb.status }}">{{ nb.status }}</td>
<td class="num">{{ nb.seconds|num('%.1f') }}{% if nb.reused %} (reused: {{ nb.reused.seconds_then|num('%.0f') }} s in run
<code>{{ nb.reused.from_run }}</code>){% endif %}{% if nb.taken %} (taken from run <code>{{ nb.taken.from_run }}</code>;
computed in {{ nb.taken.seconds_then|num('%.0f') }} s in run <code>{{ nb.taken.made_in }}</code>){% endif %}</td>
<td>{% if nb.html %}<a href="{{ nb.html }}">{{ nb.html }}</a>{% endif %}
{% if nb.notebook %} · <a href="{{ nb.notebook }}">.ipynb</a>{% endif %}</td></tr>{% endfor %}
</table>
{% for nb in sections %}<section id="{{ nb.name }}"><h2>{{ nb.name }}</h2>
<p>{% if nb.status %}<span class="{{ nb.status }}">{{ nb.status }}</span>{% endif %}
{% if nb.seconds is not none %} · {{ nb.seconds|num('%.1f') }} s{% endif %}
{% if nb.html %} · <a href="{{ nb.html }}">the executed notebook</a>{% endif %}
{% if nb.reused %} · <b>reused</b>: same parameters, inputs and code as run <code>{{ nb.reused.from_run }}</code>
(<code>{{ nb.reused.from_path }}</code>), whose outputs were copied from <code>{{ nb.reused.cache }}</code>; the
executed notebook is that run's{% endif %}
{% if nb.taken %} · <b>taken</b> (<code>mbmlab run --from</code>): copied as it was from run <code>{{ nb.taken.from_run }}</code>
(<code>{{ nb.taken.from_path }}</code>), whose parameters for it are this run's; the executed notebook is that run's,
made with that run's code{% endif %}</p>
{% if nb.metrics %}<table><tr><th>metric</th><th>value</th><th>95% interval</th></tr>
{% for name, value, ci in nb.metrics %}<tr><td>{{ name }}</td><td class="num">{{ value|num }}</td><td class="num">{{ ci|ci }}</td></tr>{% endfor %}
</table>{% endif %}
{% for fig in nb.figures %}<figure><img src="{{ fig.src }}" alt="{{ fig.name }}"><figcaption>{{ fig.name }}</figcaption></figure>{% endfor %}
{% if not nb.metrics and not nb.figures %}<p class="pending">No figures or headline metrics from this notebook.</p>{% endif %}
{% if nb.cells %}<details><summary>where the time went: {{ nb.cells|length }} cells of 1 s or more</summary>
<table><tr><th>cell</th><th>seconds</th><th>share</th><th>first line</th></tr>
{% for cell in nb.cells %}<tr><td class="num">{{ cell.index }}</td><td class="num">{{ cell.seconds|num('%.1f') }}</td>
<td class="num">{{ cell.share|num('%.0f') }}%</td><td><code>{{ cell.line }}</code></td></tr>{% endfor %}
</table></details>{% endif %}
</section>{% endfor %}
{% if trainings %}<h2 id="trainings">Trainings: throughput and MFU</h2>
<p>Each training this run did (a reused notebook's trainings ran in the run it came from). Model
FLOPs counted exactly (matmuls and convolutions, forward and backward) on about 20 passes (at least
10 apart) spread over each training and scaled to all; MFU = those FLOP/s ÷ this machine's measured peak ({{ peak_note }}).</p>
<table><tr><th>training</th><th>seconds</th><th>passes</th><th>items/s</th><th>tokens/s</th><th>GFLOP/s</th><th>MFU</th></tr>
{% for t in trainings %}<tr><td>{{ t.where }}</td><td class="num">{{ t.seconds|num('%.1f') }}</td><td class="num">{{ t.passes }}</td>
<td class="num">{{ t.items_per_second|num('%.1f') }}</td><td class="num">{{ t.tokens_per_second|num('%.0f') }}</td>
<td class="num">{{ t.gflops|num('%.1f') }}</td><td class="num">{{ t.mfu|num('%.1f') }}{% if t.mfu is not none %}%{% endif %}</td></tr>{% endfor %}
</table>{% endif %}
<h2 id="metrics">All metrics</h2>
<details><summary>{{ metrics|length }} metrics (intervals beside their values; also in metrics.json)</summary>
<table><tr><th>metric</th><th>value</th><th>95% interval</th></tr>
{% for name, value, ci in metrics %}<tr><td>{{ name }}</td><td class="num">{{ '%.6g' % value }}</td>
<td class="num">{{ ci|ci('%.6g') }}</td></tr>{% endfor %}
</table></details>
<h2 id="parameters">Parameters</h2>
{% if changed %}<table><tr><th>changed from preset {{ run.preset }}</th><th>value</th><th>preset's value</th></tr>
{% for name, value, default in changed %}<tr><td>{{ name }}</td><td>{{ value }}</td><td>{{ default }}</td></tr>{% endfor %}
</table>{% else %}<p>All as preset {{ run.preset }} sets them.</p>{% endif %}
<details><summary>every parameter</summary><table><tr><th>name</th><th>value</th></tr>
{% for name, value in run.params.items() %}<tr><td>{{ name }}</td><td>{{ value }}</td></tr>{% endfor %}
</table></details>
<h2 id="environment">Environment</h2><table>
{% for name, value in run.environment.items() %}<tr><td>{{ name }}</td><td>{{ value }}</td></tr>{% endfor %}
</table>
</body></html>
""")

# which notebook a metric family comes from (the report groups them under it)
METRIC_NOTEBOOK = {"data": "01_collect", "lm": "02_train", "align": "02_train", "ctc": "02_train",
                   "attention": "02_train", "baseline/random_init/align": "02_train",
                   "baseline/random_init/ctc": "02_train", "baseline/chance/align": "02_train", "fuse": "03_fuse", "bias": "05_bias", "fairness": "05_bias", "fusion_study": "06_fusion_study",
                   "bias_study": "07_bias_study"}


def data_uri(path: Path) -> str:
    """A PNG as a ``data:`` URI, so the page carries its figures (opens from disk, travels by e-mail)."""
    import base64

    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def interval(metrics: dict, name: str) -> tuple[float, float] | None:
    low, high = metrics.get(f"{name}/ci95_low"), metrics.get(f"{name}/ci95_high")
    return (low, high) if low is not None and high is not None else None


def summary(metrics: dict) -> list[dict]:
    """The headline metrics that are not baselines, each with the baselines measured for it
    (``baseline/<kind>/<metric>``) beside it."""
    rows = []
    for name in HEADLINE:
        if name.startswith("baseline/") or name not in metrics:
            continue
        prefix, suffix = "baseline/", f"/{name}"
        kinds = sorted(k[len(prefix):-len(suffix)] for k in metrics if k.startswith(prefix) and k.endswith(suffix)
                       and "/" not in k[len(prefix):-len(suffix)])
        rows.append({"name": name, "value": metrics[name], "ci": interval(metrics, name),
                     "baselines": [(kind, metrics[f"{prefix}{kind}{suffix}"], interval(metrics, f"{prefix}{kind}{suffix}"))
                                   for kind in kinds]})
    return rows


def metric_notebook(name: str, names: list[str]) -> str:
    """The notebook of the series a metric belongs to: by its family, else 04_evaluate."""
    for prefix in sorted(METRIC_NOTEBOOK, key=len, reverse=True):
        if name == prefix or name.startswith(prefix + "/"):
            return METRIC_NOTEBOOK[prefix]
    return "04_evaluate" if "04_evaluate" in names else (names[-1] if names else "")


def changed_params(run: dict) -> list[tuple[str, object, object]]:
    """(name, value, the preset's value) for every parameter the run changed from its preset."""
    from . import params as P

    try:
        preset = P.resolve(run.get("preset", "default"))
    except (P.ParameterError, KeyError):
        return []
    return [(k, v, preset.get(k)) for k, v in run.get("params", {}).items() if preset.get(k) != v]


def cell_times(notebook: Path, at_least: float = 1.0) -> list[dict]:
    """The executed notebook's code cells that took ``at_least`` seconds (papermill records each
    cell's duration): index (1-based, as the executed notebook counts), seconds, share of the
    notebook's time, and the cell's first line that is not an import or a comment."""
    try:
        cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return []
    timed = [(i, c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0, c)
             for i, c in enumerate(cells, start=1) if c.get("cell_type") == "code"]
    total = sum(t for _, t, _ in timed) or 1.0
    rows = []
    for index, seconds, cell in timed:
        if seconds < at_least:
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        lines = [x.strip() for x in source.splitlines() if x.strip()]
        line = next((x for x in lines if not x.startswith(("import ", "from ", "#"))), lines[0] if lines else "")
        rows.append({"index": index, "seconds": seconds, "share": 100 * seconds / total, "line": line[:110]})
    return rows


def trainings(run_dir: Path, environment: dict) -> tuple[list[dict], str]:
    """Every ``throughput.json`` a training wrote under the run folder, with its GFLOP/s and MFU
    against the measured matmul peak of ``run.json``'s environment (bf16 trainings: the bf16 peak)."""
    def peak(name):
        try:
            return float(environment.get(name, "")) * 1e9
        except ValueError:
            return None

    rows = []
    for path in sorted(Path(run_dir).rglob("throughput.json")):
        try:
            t = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        top = peak("bf16 matmul GFLOP/s" if t.get("bf16") else "fp32 matmul GFLOP/s")
        rows.append(t | {"where": str(path.parent.relative_to(run_dir)), "gflops": t["flops_per_second"] / 1e9,
                         "mfu": 100 * t["flops_per_second"] / top if top and t["flops"] else None})
    note = (f"fp32 matmul {environment['fp32 matmul GFLOP/s']} GFLOP/s, 1024², in this run's process"
            if "fp32 matmul GFLOP/s" in environment else "not measured in this run")
    return rows, note


def write_index(run_dir: Path, run: dict) -> Path:
    """``index.html``, one self-contained page: a summary of the headline metrics with their 95%
    intervals beside their baselines; per notebook its status, time, headline metrics and figures
    (inlined as data URIs); every metric; the parameters changed from the preset, then all; the
    environment; links to each executed notebook's HTML.

    All text goes through Jinja's autoescape, so user-provided strings cannot inject HTML.
    """
    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir, missing_ok=True)
    listed = [(name, value, interval(metrics, name)) for name, value in sorted(metrics.items())
              if not name.endswith(("/ci95_low", "/ci95_high"))]
    names = [nb["name"] for nb in run.get("notebooks", [])]
    figures = sorted((run_dir / "figures").glob("*.png"))
    sections, placed = [], set()
    for nb in run.get("notebooks", []):
        number = nb["name"].split("_", 1)[0]
        own = [f for f in figures if f.stem.split("_", 1)[0] == number]
        placed.update(own)
        headline = [(n, metrics[n], interval(metrics, n)) for n in HEADLINE
                    if n in metrics and metric_notebook(n, names) == nb["name"]]
        ran_here = nb.get("notebook") and not nb.get("reused") and not nb.get("taken")  # copied: timed elsewhere
        cells = cell_times(run_dir / nb["notebook"]) if ran_here else []
        sections.append(nb | {"figures": [{"name": f.stem, "src": data_uri(f)} for f in own], "metrics": headline,
                              "cells": cells})
    rest = [f for f in figures if f not in placed]
    if rest:
        sections.append({"name": "other figures", "status": None, "seconds": None, "html": None, "metrics": [],
                         "figures": [{"name": f.stem, "src": data_uri(f)} for f in rest]})
    trained, peak_note = trainings(run_dir, run.get("environment", {}))
    html = _INDEX.render(run=run, style=STYLE, summary=summary(metrics), sections=sections, metrics=listed,
                         changed=changed_params(run), trainings=trained, peak_note=peak_note)
    path = run_dir / "index.html"
    path.write_text(html, encoding="utf-8")
    return path
