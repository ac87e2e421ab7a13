"""Write notebooks/06_fusion_study.ipynb (no outputs) from the cells below and the schema."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mbmlab import params as P

NAME = P.NB_FUSION_STUDY
names = [n for n, p in P.SCHEMA.items() if NAME in p.notebooks]
start = (f'run, params = notebook.start("{NAME}", run_dir, needs="lm", '
         + ", ".join(f"{n}={n}" for n in names) + ")")

cells = [
    new_markdown_cell("""# 06 · Fusion study: three ways to join the modalities, one budget

How should the image and the clip reach the GPT? Three well-known answers, each a strategy of
`MbmForConditionalGeneration` (`fusion=`):

| strategy | how | after |
|---|---|---|
| `prefix` | the encoders' projected states are written over `<image>` / `<audio>` placeholder tokens of the decoder input | LLaVA, ClipCap |
| `cross_attention` | one marker token per image or clip; gated cross-attention blocks (gates start at zero) before the decoder layers read the encoder states | Flamingo |
| `early` | no encoders: raw 8×8 pixel patches and groups of log-mel frames, each linearly embedded into placeholder positions | Fuyu |

Each strategy is trained from the same 02_train language model (and, where it has towers, the
same aligned encoders) on the same data with the same stages, epochs, batch size, learning rates
and seed — so the same optimiser steps and the same supervised target tokens — and evaluated
on the same test split with the headline metrics of 04_evaluate. `study_seeds` repeats each
with seeds `seed, seed+1, …` for mean ± std. Each trained model is saved under
`fusion_study/<strategy>-seed<k>/`, where `mbmlab ask` can load it."""),
    new_code_cell(P.parameters_cell(NAME, "empty: use the newest run that has 02_train's encoders"),
                  metadata={"tags": ["parameters"]}),
    new_code_cell(f"""import pandas as pd
from IPython.display import Markdown, display
from mbmlab import notebook, report, study
from mbmlab.ask import ask, load

{start}
rows, histories = [], []
for fusion in params["study_fusions"]:
    for k in range(params["study_seeds"]):
        values = dict(params, fusion=fusion, seed=params["seed"] + k)
        row, history = study.train_and_evaluate(run, values, out=run / "fusion_study" / f"{{fusion}}-seed{{values['seed']}}")
        rows.append(row)
        histories.append(history)
        print(f"{{fusion}} seed {{values['seed']}}: trained in {{row['train/seconds']:.1f}} s, "
              f"VQA exact match {{row.get('vqa/exact_match', float('nan')):.4f}}")
rows, histories = pd.DataFrame(rows), pd.concat(histories, ignore_index=True)
rows.to_csv(run / "fusion_study.csv", index=False)
histories.to_csv(run / "fusion_study_history.csv", index=False)"""),
    new_markdown_cell("""## The same budget
Every strategy took the same optimiser steps over the same supervised target tokens; the
decoder positions per training row differ by design (prefix and early fusion put the media in
the sequence, cross-attention one marker)."""),
    new_code_cell("""# NBVAL_CHECK_OUTPUT
spent = rows.groupby("fusion", sort=False)[["train/steps", "train/target_tokens"]].agg(["min", "max"])
assert (spent.xs("min", axis=1, level=1) == spent.xs("max", axis=1, level=1)).all().all()
assert rows["train/steps"].nunique() == 1 and rows["train/target_tokens"].nunique() == 1, "budgets differ"
print(f"every strategy: {int(rows['train/steps'].iloc[0])} steps, {int(rows['train/target_tokens'].iloc[0])} target tokens")
print(rows.groupby("fusion", sort=False)[["train/decoder_positions_per_row", "parameters/trainable",
                                          "parameters/total"]].mean().round(1).to_string())"""),
    new_markdown_cell("""## The comparison
Mean over seeds (and the standard deviation with two or more seeds). Trainable parameters are
stage 2's; generation speed counts the decoded answers' tokens (and EOS) per second of
`generate` on the whole test split, KV cache on."""),
    new_code_cell("""summary = study.summarise(rows)
shown = study.metric_columns(rows)
table = summary[["seeds"] + shown].T.round(4)
if params["study_seeds"] > 1:
    stds = summary[[f"{c} std" for c in shown]].T
    stds.index = shown
    table = table.astype(object)
    for c in shown:
        table.loc[c] = [f"{m:.4g} ± {s:.2g}" for m, s in zip(summary[c], summary[f"{c} std"])]
display(table)
report.save_figure(study.plot_curves(histories), run, "06_fusion_study_loss")
report.save_figure(study.plot_metrics(rows), run, "06_fusion_study_metrics")"""),
    new_markdown_cell("""## What the comparison shows
Generated from the numbers above: per metric the best strategy, its margin over the runner-up,
and whether that margin is larger than twice the seeds' spread (with one seed there is no spread
to compare with, and a small margin may be noise). Then each strategy's rank on each task."""),
    new_code_cell("""lines = study.findings(summary)
ranking = study.ranks(summary)
display(ranking)
chosen = study.choose(summary) if len(ranking.columns) > 1 else None
text = "\\n".join(f"- {line}" for line in lines)
if chosen is not None:
    text += (f"\\n\\nBy mean rank over the tasks' headline metrics ({', '.join(ranking.columns[:-1])}; one vote "
             f"per task, ties broken by training time) the study supports **{chosen}** "
             f"(mean rank {ranking.loc[chosen, 'mean rank']:.2f}, trained in {summary.loc[chosen, 'train/seconds']:.0f} s).")
display(Markdown(text))
metrics = {f"fusion_study/{fusion}/{metric}": value for fusion, values in summary[shown].iterrows()
           for metric, value in values.items() if pd.notna(value)}
report.log_metrics(run, metrics)
report.save_json(run, "fusion_study.json", {"strategies": list(summary.index), "seeds": params["study_seeds"],
                                            "chosen": chosen, "findings": lines,
                                            "mean_rank": ranking["mean rank"].to_dict()});"""),
    new_markdown_cell("""## Ask each strategy
The saved models load through the Auto classes like `fused/` does (`mbmlab ask
reports/<run>/fusion_study/<strategy>-seed0 --image … --question …`)."""),
    new_code_cell("""from mbmlab.data import load_processed
processed = load_processed(report.load_json(run, "dataset.json")["path"])
test = processed.images["test"] if processed.images is not None else []
row = next((i for i, questions in enumerate(test["questions"]) if "what shape is in the image?" in questions), None) \
    if len(test) else None
if row is not None:
    picture = test[row]["image"]
    truth = test[row]["answers"][test[row]["questions"].index("what shape is in the image?")]
    for fusion in params["study_fusions"]:
        model, processor = load(run / "fusion_study" / f"{fusion}-seed{params['seed']}")
        answer = ask(model, processor, image=picture, question="what shape is in the image?").text
        print(f"{fusion:>15}: what shape is in the image? → {answer!r}  (true: {truth!r})")"""),
]
nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"},
                                         "language_info": {"name": "python"}})
nbformat.write(nb, f"notebooks/{NAME}.ipynb")
print("wrote", f"notebooks/{NAME}.ipynb")
