"""Write notebooks/07_bias_study.ipynb (no outputs) from the cells below and the schema."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mbmlab import params as P

NAME = P.NB_BIAS_STUDY
names = [n for n, p in P.SCHEMA.items() if NAME in p.notebooks]
start = (f'run, params = notebook.start("{NAME}", run_dir, needs="lm", '
         + ", ".join(f"{n}={n}" for n in names) + ")")

cells = [
    new_markdown_cell("""# 07 · Bias study: inject a bias at known strengths, measure what the model makes of it

A controlled experiment on the procedural scenes. The run's `bias_pairs` (e.g. `circle:red`)
are made to co-occur in the *training* scenes with P(colour | shape) = each value of
`bias_strengths`; validation and test scenes stay balanced. At each strength the fused model is
trained from the run's 02 models exactly as 03_fuse trains it, then measured on the balanced test:

- **VQA exact match**;
- **bias amplification** (Zhao et al. 2017) and **directional bias amplification** (Wang &
  Russakovsky 2021) shape → colour (A→T, from the colour questions) and colour → shape (T→A,
  from the shape questions), with bootstrap 95% intervals;
- **counterfactual probes**: test scenes holding a biased shape re-rendered with one attribute
  changed (the shape's colour swapped; an object of the prior's colour given another shape) — how
  often the answer follows the picture, and how often it names the training prior instead;
- a **mitigation** at the strongest bias (`bias_mitigation=oversample`: training images of a
  biased shape repeated so each of its colours is seen equally often, for the same optimiser
  steps), every figure before and
  after, and its cost in accuracy;
- **speech fairness** when the run has spoken questions (`speech` among 01's sources, `asr` /
  `spoken_vqa` among the tasks): ASR WER and spoken-VQA exact match of each model per voice,
  accent, gender and engine (fairlearn's `MetricFrame`; difference with a bootstrap interval)."""),
    new_code_cell(P.parameters_cell(NAME, "empty: use the newest run that has 02_train's models"),
                  metadata={"tags": ["parameters"]}),
    new_code_cell(f"""import pandas as pd
from IPython.display import Markdown, display
from mbmlab import bias, bias_study, fairness, notebook, report
from mbmlab.data.scenes import parse_bias_pairs
from mbmlab.paths import data_dir

{start}
collected = report.load_json(run, "dataset.json").get("params")
if collected is None:
    raise ValueError("this run's dataset.json has no 01_collect parameters (an older run); rerun 01_collect")
pairs = parse_bias_pairs(collected["bias_pairs"])
if not pairs:
    raise ValueError("bias_pairs is empty: name the shape:colour pairs to inject, e.g. --set 'bias_pairs=[\\"circle:red\\"]'")
plan = [(s, "none") for s in sorted(params["bias_strengths"])]
if params["bias_mitigation"] != "none":
    plan.append((max(params["bias_strengths"]), params["bias_mitigation"]))
print("pairs:", pairs, "— trainings:", plan)"""),
    new_code_cell("""rows, probes, spoken = [], [], {}
for strength, mitigation in plan:
    processed = bias_study.dataset_at(collected, strength, data_dir())
    out = run / "bias_study" / f"strength{strength:.2f}-{mitigation}"
    trained = bias_study.train_at(run, params, processed, strength, mitigation, out, pairs)
    qa, metrics = bias_study.evaluate_at(trained, processed, params["eval_batch_size"], params["seed"])
    probe = bias_study.counterfactuals(trained, processed, pairs, collected["scene_image_size"], params["probe_images"])
    probe.assign(strength=strength, mitigation=mitigation).pipe(probes.append)
    frames, tables, heard = bias_study.speech_at(trained, processed, params["eval_batch_size"], params["seed"])
    for task, frame in frames.items():
        frame.to_csv(out / f"{task}_predictions.csv", index=False)
    spoken[(strength, mitigation)] = (tables, heard)
    realised = bias_study.realised_prior_share(trained.train_objects, pairs)
    rows.append({"strength": strength, "mitigation": mitigation, "realised P(prior colour | biased shape)": realised,
                 "steps": trained.steps, "train seconds": trained.seconds, **metrics, **heard,
                 **bias_study.probe_rates(probe)})
    print(f"strength {strength:.2f} {mitigation}: trained {trained.steps} steps in {trained.seconds:.0f} s; "
          f"VQA {metrics['vqa/exact_match']:.2%}")
table = pd.DataFrame(rows)
pd.concat(probes).to_csv(run / "bias_study_probes.csv", index=False)
table.to_csv(run / "bias_study.csv", index=False)"""),
    new_code_cell("""# NBVAL_CHECK_OUTPUT
shown = ["strength", "mitigation", "realised P(prior colour | biased shape)", "steps", "vqa/exact_match",
         "bias/amplification", "bias/directional_amplification/A->T", "bias/directional_amplification/T->A",
         "counterfactual/colour/follows_image", "counterfactual/colour/follows_prior",
         "counterfactual/shape/follows_image", "counterfactual/shape/follows_prior"]
print(table[[c for c in shown if c in table]].round(4).to_string(index=False))"""),
    new_markdown_cell("""## Amplification against the injected strength
Points: the models trained at each strength (bars: 95% intervals); the mitigated model at the
strongest bias as a separate marker. Right: the counterfactual probes."""),
    new_code_cell("""report.save_figure(bias_study.plot(table), run, "07_bias_study")"""),
    new_markdown_cell("""## Speech fairness by voice group
Each model's ASR word error rate and spoken-VQA exact match per voice, accent, gender and
engine: the difference between the best and the worst group with its bootstrap 95% interval
(clips resampled), and the ratio worst/best. The figure shows the model at the strongest
injected bias without mitigation."""),
    new_code_cell("""fair = bias_study.fairness_table(table)
if fair.empty:
    print("no spoken test clips in this run (add speech to 01's sources and asr / spoken_vqa to the tasks)")
else:
    print(fair.round(4).to_string(index=False))
    strongest = (max(params["bias_strengths"]), "none")
    tables, heard = spoken[strongest]
    report.save_figure(fairness.plot_disparities(tables, heard), run, "07_speech_fairness")"""),
    new_markdown_cell("## Findings"),
    new_code_cell("""lines = bias_study.findings(table)
display(Markdown("\\n".join(f"- {line}" for line in lines) or "No finding: fewer than two strengths were trained."))
metrics = {f"bias_study/{r['mitigation']}/{r['strength']:.2f}/{k}": v for r in table.to_dict("records")
           for k, v in r.items() if k not in ("strength", "mitigation") and pd.notna(v) and isinstance(v, (int, float))}
report.log_metrics(run, metrics)
report.save_json(run, "bias_study.json", {"pairs": pairs, "plan": plan, "findings": lines});"""),
]
nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"},
                                         "language_info": {"name": "python"}})
nbformat.write(nb, f"notebooks/{NAME}.ipynb")
print("wrote", f"notebooks/{NAME}.ipynb")
