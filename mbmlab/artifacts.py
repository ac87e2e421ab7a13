"""A run folder's files as every layer writes and reads them: JSON artifacts, the flat
``metrics.json`` (name → number) and ``figures/*.png``. No torch; the run folder itself
(where it lives, how it is named) belongs to ``mbmlab.lab.paths``."""
from __future__ import annotations

import json
import math
from pathlib import Path


class MissingArtifactError(FileNotFoundError):
    """A file an earlier notebook should have written into the run folder is missing."""


class CorruptArtifactError(ValueError):
    """A file an earlier notebook wrote is there but cannot be read (truncated, overwritten)."""


def check_model_folder(folder: Path, made_by: str) -> Path:
    """Refuse a saved model folder whose files cannot be read, naming the file and the notebook
    (``made_by``) to rerun: every ``*.json`` must parse and every ``*.safetensors`` must hold its
    whole header-declared data (``safetensors.safe_open`` checks this). Returns ``folder``."""
    folder = Path(folder)
    for path in sorted(folder.glob("*.json")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CorruptArtifactError(f"{path} is not valid JSON ({err}): the file is damaged; rerun {made_by} "
                                       "to write it again") from None
    from safetensors import SafetensorError, safe_open

    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), "pt"):
                pass
        except (SafetensorError, OSError) as err:
            raise CorruptArtifactError(f"{path} cannot be read ({err}): it is truncated or corrupt; rerun {made_by} "
                                       "to write it again") from None
    return folder


# the saved model folders of a run and the notebook that writes each
MODEL_FOLDERS = {"lm": "02_train", "image_encoder": "02_train", "image_encoder/encoder": "02_train",
                 "audio_encoder": "02_train", "audio_encoder/encoder": "02_train", "fused": "03_fuse"}


def check_run_models(run_dir: Path, made_by=None) -> None:
    """``check_model_folder`` on each of the run's model folders that exists, those written by the
    notebooks ``made_by`` (a name or a collection of names; None: all)."""
    wanted = {made_by} if isinstance(made_by, str) else set(made_by) if made_by is not None else None
    for folder, notebook in MODEL_FOLDERS.items():
        if (wanted is None or notebook in wanted) and (Path(run_dir) / folder).is_dir():
            check_model_folder(Path(run_dir) / folder, notebook)


def save_json(run_dir: Path, name: str, obj) -> Path:
    path = Path(run_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str))
    return path


def load_json(run_dir: Path, name: str):
    path = Path(run_dir) / name
    if not path.exists():
        raise MissingArtifactError(f"{path} is missing; run the notebook that writes {name!r} first")
    return json.loads(path.read_text())


def read_metrics(run_dir: Path, missing_ok: bool = False) -> dict[str, float]:
    """The run's flat ``metrics.json`` (name → number): the one reader of it. A missing file raises
    ``MissingArtifactError`` (``missing_ok``: gives ``{}``, as before any notebook recorded one); a
    file that is not a JSON object of numbers raises ``CorruptArtifactError`` naming it."""
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        if missing_ok:
            return {}
        raise MissingArtifactError(f"{path} is missing: no notebook of this run recorded a metric; run the series "
                                   f"(or finish it with `mbmlab run --resume {Path(run_dir)}`)")
    try:
        metrics = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptArtifactError(f"{path} is not valid JSON ({err}); rerun the notebook that last wrote it") from None
    if not isinstance(metrics, dict) or not all(isinstance(v, (int, float)) for v in metrics.values()):
        raise CorruptArtifactError(f"{path} is not a flat object of name → number; rerun the notebook that last "
                                   f"wrote it")
    return metrics


def log_metrics(run_dir: Path, metrics: dict[str, float]) -> dict[str, float]:
    """Merge ``metrics`` into the run's flat ``metrics.json`` (name → number)."""
    path = Path(run_dir) / "metrics.json"
    merged = read_metrics(run_dir, missing_ok=True)
    for name, value in metrics.items():
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"metric {name} is {value}; refusing to record a non-finite number")
        merged[name] = value
    path.write_text(json.dumps(dict(sorted(merged.items())), indent=1))
    return merged


def save_figure(fig, run_dir: Path, name: str) -> Path:
    """``figures/<name>.png`` (the figure stays open: a notebook still shows it inline)."""
    path = Path(run_dir) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path
