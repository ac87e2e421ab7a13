import json
import math

import pytest

from mbmlab import artifacts
from mbmlab.lab import report
from mbmlab.lab.paths import RunDirError, new_run_dir, resolve_run_dir


def test_log_metrics_merges_and_refuses_non_finite(tmp_path):
    artifacts.log_metrics(tmp_path, {"b/x": 1})
    merged = artifacts.log_metrics(tmp_path, {"a/y": 0.5})
    assert merged == {"a/y": 0.5, "b/x": 1.0}
    assert list(json.loads((tmp_path / "metrics.json").read_text())) == ["a/y", "b/x"]
    with pytest.raises(ValueError, match="non-finite"):
        artifacts.log_metrics(tmp_path, {"c": math.nan})


def test_index_escapes_user_text(tmp_path):
    artifacts.log_metrics(tmp_path, {"vqa/exact_match": 0.9})
    run = {"run_id": "r", "preset": "tiny", "started": "now", "status": "ok", "error": None, "total_seconds": 1.0,
           "params": {"projector": "<script>alert(1)</script>"}, "environment": {},
           "notebooks": [{"name": "01_collect", "status": "ok", "seconds": 1.0, "html": "01_collect.html",
                          "notebook": "01_collect.ipynb"}]}
    html = report.write_index(tmp_path, run).read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert "vqa/exact_match" in html and "0.9000" in html


def test_run_dirs_are_never_reused(tmp_path):
    a, b = new_run_dir(tmp_path, "tiny"), new_run_dir(tmp_path, "tiny")
    assert a != b and a.is_dir() and b.is_dir()


def test_resolve_run_dir_errors_name_the_missing_piece(tmp_path, monkeypatch):
    with pytest.raises(RunDirError, match="does not exist"):
        resolve_run_dir(tmp_path / "nope")
    with pytest.raises(RunDirError, match="has no 'lm'"):
        resolve_run_dir(tmp_path, needs="lm")
    monkeypatch.setenv("MBMLAB_REPORTS", str(tmp_path))
    older, newer = new_run_dir(tmp_path, "a"), new_run_dir(tmp_path, "b")
    (older / "lm").mkdir()
    assert resolve_run_dir("", needs="lm") == older.resolve()
    with pytest.raises(RunDirError, match="no run under"):
        resolve_run_dir("", needs="fused")
    assert resolve_run_dir("", needs=None).parent == tmp_path  # first notebook: a fresh run
    assert newer.exists()


def test_index_shows_intervals_beside_values(tmp_path):
    artifacts.log_metrics(tmp_path, {"vqa/exact_match": 0.9, "vqa/exact_match/ci95_low": 0.85,
                                  "vqa/exact_match/ci95_high": 0.93, "asr/wer": 0.4})
    run = {"run_id": "r", "preset": "tiny", "started": "now", "status": "ok", "error": None, "total_seconds": 1.0,
           "params": {}, "environment": {}, "notebooks": []}
    html = report.write_index(tmp_path, run).read_text()
    assert "[0.8500, 0.9300]" in html  # headline table
    assert "[0.85, 0.93]" in html  # all-metrics table, where the bounds are not rows of their own
    assert "ci95_low</td>" not in html


def test_index_is_self_contained_with_baselines_sections_and_changed_params(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    artifacts.log_metrics(tmp_path, {"vqa/exact_match": 0.9, "baseline/blind/vqa/exact_match": 0.6,
                                  "baseline/blind/vqa/exact_match/ci95_low": 0.55,
                                  "baseline/blind/vqa/exact_match/ci95_high": 0.65, "lm/perplexity": 1.7})
    fig = plt.figure()
    plt.plot([0, 1])
    artifacts.save_figure(fig, tmp_path, "04_confusion")
    artifacts.save_figure(fig, tmp_path, "99_extra")
    run = {"run_id": "r", "preset": "tiny", "started": "now", "status": "ok", "error": None, "total_seconds": 1.0,
           "params": {"seed": 0, "fusion": "cross_attention"}, "environment": {"git commit": "abc1234"},
           "notebooks": [{"name": n, "status": "ok", "seconds": 1.0, "html": f"{n}.html", "notebook": f"{n}.ipynb"}
                         for n in ("02_train", "04_evaluate")]}
    html = report.write_index(tmp_path, run).read_text()
    assert 'src="figures/' not in html and html.count("data:image/png;base64,") == 2
    assert "blind 0.6000 [0.5500, 0.6500]" in html  # the baseline beside its metric
    summary = html.split("<h2>Summary</h2>")[1].split("<h2>Notebooks</h2>")[0]
    assert "baseline/blind" not in summary  # baselines are not rows of their own
    section = html.split('<section id="02_train">')[1].split("</section>")[0]
    assert "lm/perplexity" in section and "04_confusion" not in section
    assert "04_confusion" in html.split('<section id="04_evaluate">')[1].split("</section>")[0]
    assert "other figures" in html and "99_extra" in html
    params = html.split('id="parameters"')[1]
    assert "<td>fusion</td><td>cross_attention</td><td>prefix</td>" in params  # changed, with the preset's value
    assert "abc1234" in html


def test_index_shows_where_the_time_went_and_each_trainings_mfu(tmp_path):
    """Cells of ≥ 1 s from papermill's durations, the first line that is not an import; a training's
    throughput.json as GFLOP/s and MFU against run.json's measured peak (4 GFLOP/s at a 50 GFLOP/s
    peak: 8%; the bf16 one against the bf16 peak: 4 / 10 = 40%)."""
    import nbformat

    cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("import torch\ntrainers = train(model)"),
             nbformat.v4.new_code_cell("# a comment\nsave(model)")]
    for cell, seconds in zip(cells, (0.2, 30.0, 10.0)):
        cell.metadata["papermill"] = {"duration": seconds}
    nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / "03_fuse.ipynb")
    assert [(c["index"], c["line"], round(c["share"])) for c in report.cell_times(tmp_path / "03_fuse.ipynb")] == [
        (2, "trainers = train(model)", 75), (3, "save(model)", 25)]
    for where, bf16 in (("checkpoints/fused/stage2", False), ("checkpoints/fused/bf16", True)):
        (tmp_path / where).mkdir(parents=True)
        (tmp_path / where / "throughput.json").write_text(json.dumps(
            {"training": "stage2", "seconds": 10.0, "passes": 100, "items_per_second": 80.0, "tokens_per_second": 900.0,
             "flops": 4e10, "flops_per_second": 4e9, "flops_sampled_passes": 10, "bf16": bf16}))
    run = {"run_id": "r", "preset": "tiny", "started": "now", "status": "ok", "error": None, "total_seconds": 41.0,
           "params": {}, "environment": {"fp32 matmul GFLOP/s": "50", "bf16 matmul GFLOP/s": "10.0"},
           "notebooks": [{"name": "03_fuse", "status": "ok", "seconds": 41.0, "html": "03_fuse.html",
                          "notebook": "03_fuse.ipynb"}]}
    html = report.write_index(tmp_path, run).read_text()
    assert "where the time went: 2 cells" in html and "<code>trainers = train(model)</code>" in html
    table = html.split('id="trainings"')[1].split("</table>")[0]
    assert "checkpoints/fused/stage2" in table and ">8.0%<" in table and ">40.0%<" in table


def test_every_metric_family_is_placed_under_the_notebook_that_records_it():
    """01's data counts, 02's CTC, attention check, untrained-tower and chance references, 03's fusion, and
    the rest 04's (benchmarks/evaluate_split.py keeps 01–03's by this; mutation: ctc left out of
    METRIC_NOTEBOOK → ctc/audio/wer lands under 04 and this fails)."""
    from mbmlab.lab import params as P

    names = list(P.NOTEBOOKS)
    expected = {"data/train/images": "01_collect", "ctc/audio/wer": "02_train", "lm/perplexity": "02_train",
                "attention/max_abs_difference/sdpa": "02_train", "baseline/random_init/ctc/audio/wer": "02_train",
                "baseline/random_init/align/image/recall@1": "02_train", "baseline/chance/align/audio/recall@5": "02_train",
                "fuse/final_train_loss": "03_fuse",
                "vqa/exact_match": "04_evaluate", "baseline/cnn_bow/vqa/exact_match": "04_evaluate",
                "fairness/asr/voice/difference": "05_bias"}
    assert {name: report.metric_notebook(name, names) for name in expected} == expected
