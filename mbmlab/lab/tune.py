"""``mbmlab tune``: search parameters with Optuna, each trial a run evaluated on the validation split.

    mbmlab tune --preset tiny --space fuse_learning_rate=1e-4:1e-2:log --space fuse_epochs=2:6 \\
        --metric vqa/exact_match --direction max --trials 12 --parallel 2

Each trial is a run of the series up to ``04_evaluate`` with ``evaluate_split=validation`` and
the parameters Optuna proposes (TPE, Bergstra et al. 2011, ``optuna.samplers.TPESampler``; with
``constant_liar`` so that trials in flight at once are not proposed twice); its value is the
metric from the run's ``metrics.json``. Trial 0 is the preset's own configuration (with ``--set``)
where it lies inside the space: the reference the search has to beat. Trials run as Ray tasks,
``--parallel`` at a time (each asking ``--num-cpus``), locally or on a cluster (``--address``).
After the last trial, the best configuration runs once more — the whole series, on the **test**
split: the one number to report. Choosing is done on validation only.

``reports/<stamp>-<preset>-tune/`` holds ``tune.json`` (the search), ``study.journal`` (Optuna's
storage: an interrupted tune continues with ``mbmlab tune --resume <folder>``, its finished
trials kept, the ones cut short marked failed and run again), ``trials.csv``, ``history.png``
(the optimisation history), ``importance.png`` (fANOVA parameter importance, Hutter et al. 2014,
Optuna's default evaluator; from 3 finished trials of 2 or more parameters), ``best.json`` and ``index.html``.
"""
from __future__ import annotations

import html
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from . import params as P
from .paths import new_run_dir, reports_dir

TRIAL_UNTIL = "04_evaluate"  # a trial needs 04's validation metrics; 05's bias audit does not choose


class TuneError(ValueError):
    """A search that cannot run (bad space, unknown key or metric direction): nothing was started."""


class TuneInterrupted(RuntimeError):
    """Ctrl-C: the trials in flight were marked failed; ``--resume`` continues."""


@dataclass(frozen=True)
class Dimension:
    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple | None = None

    def distribution(self):
        import optuna.distributions as D

        if self.choices is not None:
            return D.CategoricalDistribution(self.choices)
        if P.SCHEMA[self.key].type is int:
            return D.IntDistribution(int(self.low), int(self.high), log=self.log)
        return D.FloatDistribution(self.low, self.high, log=self.log)

    def contains(self, value) -> bool:
        if self.choices is not None:
            return value in self.choices
        return isinstance(value, (int, float)) and self.low <= value <= self.high


def parse_space(items: list[str], preset: str = "default") -> list[Dimension]:
    """``["fuse_learning_rate=1e-4:1e-2:log", "fuse_epochs=2:6", "projector=linear,mlp2x_gelu"]``
    → dimensions; each end (and each choice) validated against the parameter schema."""
    dims, seen = [], set()
    for item in items:
        if "=" not in item:
            raise TuneError(f"--space expects key=low:high[:log] or key=a,b,…; got {item!r}")
        key, raw = (part.strip() for part in item.split("=", 1))
        if key not in P.SCHEMA:
            raise TuneError(f"unknown parameter {key!r} in --space; see `mbmlab params`")
        if key in seen:
            raise TuneError(f"{key} appears twice in --space")
        seen.add(key)
        spec = P.SCHEMA[key]
        if ":" in raw:
            parts = raw.split(":")
            log = len(parts) == 3 and parts[2] == "log"
            if len(parts) not in (2, 3) or (len(parts) == 3 and not log) or spec.type not in (int, float):
                raise TuneError(f"--space {item!r}: a number range is key=low:high or key=low:high:log, for an "
                                f"int or float parameter ({key} is {spec.type.__name__})")
            try:
                low, high = (spec.type(float(v)) if spec.type is int else float(v) for v in parts[:2])
            except ValueError:
                raise TuneError(f"--space {item!r}: low and high must be numbers") from None
            if not low < high or (log and low <= 0):
                raise TuneError(f"--space {item!r}: need low < high (and low > 0 on a log scale)")
            dim = Dimension(key, low, high, log)
            ends = [low, high]
        else:
            from .sweep import _value

            choices = tuple(_value(v) for v in raw.split(",") if v.strip())
            if len(choices) < 2:
                raise TuneError(f"--space {item!r}: give a range low:high or at least two choices a,b")
            dim, ends = Dimension(key, choices=choices), list(choices)
        for end in ends:
            try:
                P.resolve(preset, {key: end})
            except P.ParameterError as err:
                raise TuneError(f"--space {item!r}: {err}") from None
        dims.append(dim)
    if not dims:
        raise TuneError("give at least one --space key=low:high[:log]")
    return dims


def run_tune(space: list[Dimension] | None = None, metric: str = "", direction: str = "max", trials: int = 10,
             preset: str = "default", base: dict | None = None, *, parallel: int = 1, seed: int = 0,
             num_cpus: float | None = None, num_gpus: float = 0, address: str | None = None,
             resume: Path | None = None, final: bool = True, reports: Path | None = None, log=print, run=None,
             **run_kwargs) -> Path:
    """Run (or, with ``resume``, continue) a search; returns the tune folder."""
    import optuna

    from .runner import run_series
    from .sweep import connect, ctrl_c_flag, outcome, run_task
    from .tracking import prepare

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run = run or run_series
    if reports is None and resume is not None:  # the trials go beside the tune folder, as the first time
        reports = Path(resume).resolve().parent
    reports = Path(reports or reports_dir()).resolve()
    run_kwargs = {k: v for k, v in run_kwargs.items() if v is not None}
    if resume is not None:
        folder = Path(resume).resolve()
        if not (folder / "tune.json").exists():
            raise TuneError(f"{folder} has no tune.json: not a tune folder")
        saved = json.loads((folder / "tune.json").read_text())
        preset, base, metric, direction = saved["preset"], saved["base"], saved["metric"], saved["direction"]
        trials, parallel, seed = saved["trials"], saved["parallel"], saved["seed"]
        space = [Dimension(d["key"], d["low"], d["high"], d["log"], tuple(d["choices"]) if d["choices"] else None)
                 for d in saved["space"]]
        final = saved.get("final", final)
    else:
        if direction not in ("max", "min"):
            raise TuneError(f"--direction is max or min, not {direction!r}")
        if trials < 1 or parallel < 1:
            raise TuneError("--trials and --parallel must be at least 1")
        if not metric:
            raise TuneError("give --metric, a name from a run's metrics.json (say vqa/exact_match)")
        try:
            P.resolve(preset, (base or {}) | {"evaluate_split": "validation"})
        except P.ParameterError as err:
            raise TuneError(str(err)) from None
        folder = new_run_dir(reports, label=f"{preset}-tune")
        (folder / "tune.json").write_text(json.dumps(
            {"preset": preset, "base": base or {}, "metric": metric, "direction": direction, "trials": trials,
             "parallel": parallel, "seed": seed, "final": final, "sampler": "TPESampler",
             "space": [d.__dict__ | {"choices": list(d.choices) if d.choices else None} for d in space]},
            indent=1, default=str))
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(folder / "study.journal")))
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, trials // 3)), constant_liar=True)
    study = optuna.create_study(study_name="mbmlab", storage=storage, sampler=sampler, load_if_exists=True,
                                direction="maximize" if direction == "max" else "minimize")
    from optuna.trial import TrialState

    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # cut short by an interrupt
        study.tell(stale.number, state=TrialState.FAIL)
        log(f"tune: trial {stale.number} was cut short; marked failed")
    values = P.resolve(preset, base)
    if not study.trials:
        start = {d.key: values[d.key] for d in space}
        if all(d.contains(start[d.key]) for d in space):
            study.enqueue_trial(start)  # trial 0: the configuration to beat
    distributions = {d.key: d.distribution() for d in space}
    log(f"tune {folder}: {trials} trials of preset {preset}, {metric} ({direction}) on validation, "
        f"{parallel} at a time")
    prepare(reports, folder.name, log=log)
    disconnect = connect(address, reports)
    import ray

    pending: dict = {}
    try:
        task = run_task(num_cpus, num_gpus)
        trial_kwargs = run_kwargs | {"reports": reports, "experiment": folder.name, "until": TRIAL_UNTIL}

        def complete() -> int:
            return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

        def submit():
            trial = study.ask(distributions)
            overrides = (base or {}) | trial.params | {"evaluate_split": "validation"}
            ref = task.remote(run, preset, overrides, trial_kwargs, str(folder / "attempts" / f"{trial.number:04d}"), False)
            pending[ref] = (trial, time.perf_counter())

        (folder / "attempts").mkdir(exist_ok=True)
        failures = 0
        stop = ctrl_c_flag()  # Ctrl-C is acted on here, never inside a library that might catch it
        while complete() < trials:
            while len(pending) < parallel and complete() + len(pending) < trials and not stop.is_set():
                submit()
            if stop.is_set():
                raise KeyboardInterrupt
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            if not done:
                continue
            trial, started = pending.pop(done[0])
            result = outcome(done[0])
            value, error = None, result.get("error")
            if result["status"] == "ok":
                metrics = json.loads((Path(result["run"]) / "metrics.json").read_text())
                value = metrics.get(metric)
                if value is None or not math.isfinite(value):
                    close = ", ".join(sorted(k for k in metrics if metric.split("/")[0] in k)[:8])
                    error = f"metric {metric!r} not in the run's metrics.json (similar: {close or 'none'})"
            for key in ("run", "host", "node"):
                if result.get(key):
                    trial.set_user_attr(key, result[key])
            trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
            if error is None:
                study.tell(trial, value)
                log(f"[tune] trial {trial.number} {trial.params}: {metric} = {value:.4f}")
            else:
                trial.set_user_attr("error", error.splitlines()[0][:500])
                study.tell(trial, state=TrialState.FAIL)
                failures += 1
                log(f"[tune] trial {trial.number} {trial.params}: failed — {error.splitlines()[0]}")
                if failures >= max(3, trials):
                    raise TuneError(f"{failures} trials failed; the last: {error.splitlines()[0]}")
            write_report(folder, study, metric, direction)
    except KeyboardInterrupt:
        ctrl_c_flag.restore()
        for ref, (trial, _) in pending.items():
            ray.cancel(ref, force=True)
            study.tell(trial, state=TrialState.FAIL)
        disconnect()
        raise TuneInterrupted(f"tune interrupted; continue with `mbmlab tune --resume {folder}`") from None
    except BaseException:
        disconnect()
        raise
    finally:
        ctrl_c_flag.restore()
    best = study.best_trial
    record = {"metric": metric, "direction": direction, "validation_value": best.value, "trial": best.number,
              "params": best.params, "validation_run": best.user_attrs.get("run"), "final_run": None}
    try:  # on the same Ray connection as the trials
        if final:
            from .sweep import Point, execute

            point = Point((base or {}) | best.params | {"evaluate_split": "test"}, label="best on test")
            log(f"tune: best trial {best.number} {best.params} ({metric} {best.value:.4f} on validation); "
                "running it once on the test split")
            execute([point], preset, folder, run, run_kwargs | {"reports": reports, "experiment": folder.name},
                    num_cpus=num_cpus, num_gpus=num_gpus, address=address, log=log)
            record["final_run"], record["final_status"] = point.run, point.status
            if point.status == "ok":
                record["test_value"] = json.loads((Path(point.run) / "metrics.json").read_text()).get(metric)
            else:
                record["final_error"] = point.error
    finally:
        disconnect()
    (folder / "best.json").write_text(json.dumps(record, indent=1, default=str))
    write_report(folder, study, metric, direction, record)
    log(f"tune: {folder / 'index.html'}")
    return folder


def trials_frame(study):
    import pandas as pd

    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({"trial": t.number, "state": t.state.name, "value": t.value, **t.params,
                     "seconds": t.user_attrs.get("seconds"), "run": t.user_attrs.get("run"),
                     "host": t.user_attrs.get("host"), "error": t.user_attrs.get("error")})
    return pd.DataFrame(rows)


def write_report(folder: Path, study, metric: str, direction: str, best: dict | None = None) -> None:
    """``trials.csv``, the history and importance plots and ``index.html`` (rewritten after each trial)."""
    import matplotlib

    matplotlib.use("Agg")
    import warnings

    import matplotlib.pyplot as plt
    import optuna
    from optuna.trial import TrialState

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # the plots: stable for years

    from .report import data_uri

    table = trials_frame(study)
    table.to_csv(folder / "trials.csv", index=False)
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    def save(ax, name: str, height: float) -> Path:
        ax.figure.set_size_inches(7, height)
        ax.figure.tight_layout()
        ax.figure.savefig(folder / name, dpi=100)
        plt.close(ax.figure)
        return folder / name

    figures = []
    if finished:
        ax = optuna.visualization.matplotlib.plot_optimization_history(study, target_name=metric)
        figures.append(("optimisation history (validation)", save(ax, "history.png", 4)))
    if len(finished) >= 3 and len(finished[0].params) >= 2:  # with one parameter its importance is 1 by definition
        try:
            ax = optuna.visualization.matplotlib.plot_param_importances(study, target_name=metric)
            figures.append(("parameter importance (fANOVA)", save(ax, "importance.png", 3)))
        except (RuntimeError, ValueError) as err:  # too few distinct values to fit
            figures.append((f"parameter importance: not computed — {err}", None))
    head = (f"<p>{len(finished)} finished trials; {metric} ({direction}) on the validation split. Each trial is one "
            "training at one seed: trials closer than the seed-to-seed spread are not told apart, and the best "
            "validation value is optimistic (it was chosen as the largest) — the test run below is the number "
            "to report.</p>")
    if best:
        head += (f"<p><b>Best:</b> trial {best['trial']} {html.escape(json.dumps(best['params']))}: "
                 f"{best['validation_value']:.4f} on validation")
        if best.get("final_run"):
            name = Path(best["final_run"]).name
            shown = f"{best['test_value']:.4f}" if best.get("test_value") is not None else best.get("final_status")
            head += f"; the final run on test: <b>{shown}</b> (<a href='../{name}/index.html'>{name}</a>)"
        head += "</p>"
    shown = table.copy()
    if "run" in shown:
        shown["run"] = [f"<a href='../{Path(r).name}/index.html'>{html.escape(Path(r).name)}</a>"
                        if isinstance(r, str) and r else "" for r in shown["run"]]
    shown = shown.astype(object).where(shown.notna(), "")
    images = "".join(f"<h2>{html.escape(title)}</h2>" + (f"<img src='{data_uri(path)}'>" if path else "")
                     for title, path in figures)
    (folder / "index.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>tune {html.escape(folder.name)}</title>"
        f"<h1>Tune {html.escape(folder.name)}</h1>{head}{images}<h2>Trials</h2>"
        f"{shown.to_html(index=False, escape=False, float_format=lambda v: f'{v:.4g}')}")
