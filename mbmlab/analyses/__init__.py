"""The analyses the notebooks run, one module per notebook section: the trained VQA baselines and
the explanation maps (04_evaluate), the bias audit and speech fairness (05_bias), the fusion
study (06) and the bias study (07). Imports training, metrics, models and data; never the lab."""
