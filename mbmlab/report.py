"""Run artifacts (metrics, figures, JSON) and the run's ``index.html``."""
from __future__ import annotations

import json
import math
from pathlib import Path

import jinja2

HEADLINE = ("vqa/exact_match", "vqa/exact_match/colour", "vqa/exact_match/shape", "vqa/exact_match/yes/no",
            "baseline/majority/vqa/exact_match", "baseline/majority_by_type/vqa/exact_match",
            "baseline/blind/vqa/exact_match", "baseline/image_only/vqa/exact_match", "baseline/random_init/vqa/exact_match",
            "spoken_vqa/exact_match", "spoken_vqa/typed_exact_match",
            "explain/object_share", "explain/object_share/randomised", "explain/object_area", "asr/wer", "asr/cer",
            "caption/exact_match", "baseline/majority/caption/exact_match", "caption/BLEU-3", "caption/BLEU-4",
            "caption/METEOR", "caption/ROUGE-L", "caption/CIDEr", "lm/perplexity", "align/image/recall@1", "baseline/random_init/align/image/recall@1",
            "align/audio/recall@1", "baseline/random_init/align/audio/recall@1")


def save_json(run_dir: Path, name: str, obj) -> Path:
    path = Path(run_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str))
    return path


def load_json(run_dir: Path, name: str):
    path = Path(run_dir) / name
    if not path.exists():
        from .paths import RunDirError
        raise RunDirError(f"{path} is missing; run the notebook that writes {name!r} first")
    return json.loads(path.read_text())


def log_metrics(run_dir: Path, metrics: dict[str, float]) -> dict[str, float]:
    """Merge ``metrics`` into the run's flat ``metrics.json`` (name → number)."""
    path = Path(run_dir) / "metrics.json"
    merged = json.loads(path.read_text()) if path.exists() else {}
    for name, value in metrics.items():
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"metric {name} is {value}; refusing to record a non-finite number")
        merged[name] = value
    path.write_text(json.dumps(dict(sorted(merged.items())), indent=1))
    return merged


def save_figure(fig, run_dir: Path, name: str) -> Path:
    path = Path(run_dir) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


_INDEX = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mbmlab run {{ run.run_id }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #176f2c; } .failed { color: #b00020; font-weight: bold; } .pending { color: #888; }
.figs img { display: block; max-width: 100%; margin: 0.8em 0; border: 1px solid #ddd; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; }
</style></head><body>
<h1>mbmlab run <code>{{ run.run_id }}</code></h1>
<p>Preset <b>{{ run.preset }}</b> · started {{ run.started }} · status
<span class="{{ 'ok' if run.status == 'ok' else 'failed' }}">{{ run.status }}</span>
{% if run.total_seconds is not none %}· {{ '%.1f' % run.total_seconds }} s in all{% endif %}</p>
{% if run.error %}<pre class="failed">{{ run.error }}</pre>{% endif %}
<h2>Headline metrics</h2>
{% if headline %}<table><tr><th>metric</th><th>value</th><th>95% interval</th></tr>
{% for name, value, ci in headline %}<tr><td>{{ name }}</td><td class="num">{{ '%.4f' % value }}</td>
<td class="num">{% if ci %}{{ '[%.4f, %.4f]' % ci }}{% endif %}</td></tr>{% endfor %}
</table>{% else %}<p>No metrics recorded.</p>{% endif %}
<h2>Notebooks</h2>
<table><tr><th>notebook</th><th>status</th><th>seconds</th><th>report</th></tr>
{% for nb in run.notebooks %}<tr><td>{{ nb.name }}</td><td class="{{ nb.status }}">{{ nb.status }}</td>
<td class="num">{{ '%.1f' % nb.seconds if nb.seconds is not none else '' }}</td>
<td>{% if nb.html %}<a href="{{ nb.html }}">{{ nb.html }}</a>{% endif %}
{% if nb.notebook %} · <a href="{{ nb.notebook }}">.ipynb</a>{% endif %}</td></tr>{% endfor %}
</table>
{% if figures %}<h2>Figures</h2><div class="figs">
{% for fig in figures %}<a href="{{ fig }}"><img src="{{ fig }}" alt="{{ fig }}"></a>{% endfor %}</div>{% endif %}
<h2>All metrics</h2><p><a href="metrics.json">metrics.json</a></p>
<table><tr><th>metric</th><th>value</th><th>95% interval</th></tr>
{% for name, value, ci in metrics %}<tr><td>{{ name }}</td><td class="num">{{ '%.6g' % value }}</td>
<td class="num">{% if ci %}{{ '[%.6g, %.6g]' % ci }}{% endif %}</td></tr>{% endfor %}
</table>
<h2>Parameters</h2><table><tr><th>name</th><th>value</th></tr>
{% for name, value in run.params.items() %}<tr><td>{{ name }}</td><td>{{ value }}</td></tr>{% endfor %}
</table>
<h2>Environment</h2><table>
{% for name, value in run.environment.items() %}<tr><td>{{ name }}</td><td>{{ value }}</td></tr>{% endfor %}
</table>
</body></html>
""")


def write_index(run_dir: Path, run: dict) -> Path:
    """``index.html``: headline metrics with their 95% intervals where recorded, per-notebook status
    and time, figures, parameters, environment.

    All text goes through Jinja's autoescape, so user-provided strings cannot inject HTML.
    """
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    def interval(name):
        low, high = metrics.get(f"{name}/ci95_low"), metrics.get(f"{name}/ci95_high")
        return (low, high) if low is not None and high is not None else None

    headline = [(name, metrics[name], interval(name)) for name in HEADLINE if name in metrics]
    listed = [(name, value, interval(name)) for name, value in sorted(metrics.items())
              if not name.endswith(("/ci95_low", "/ci95_high"))]
    figures = sorted(p.relative_to(run_dir).as_posix() for p in (run_dir / "figures").glob("*.png"))
    html = _INDEX.render(run=run, headline=headline, metrics=listed, figures=figures)
    path = run_dir / "index.html"
    path.write_text(html, encoding="utf-8")
    return path
