"""`mbmlab compare` on hand-made run folders: which differences exceed their intervals, which
parameters differ, a self-contained page, clear errors."""
import pytest

import helpers
from mbmlab.lab import cli, compare


def fake_run(folder, name, metrics, params, preset="default", status="ok"):
    return helpers.fake_run(folder / name, metrics, params, preset, status, total_seconds=12.5,
                            environment={"git commit": "abc"})


@pytest.fixture
def two_runs(tmp_path):
    # vqa: A [0.80, 0.84] vs B [0.86, 0.90] → apart; asr/wer: [0.30, 0.40] vs [0.35, 0.45] → overlap;
    # lm/perplexity has no interval → never flagged, although the values differ
    a = fake_run(tmp_path, "A-run", {"vqa/exact_match": 0.82, "vqa/exact_match/ci95_low": 0.80,
                                     "vqa/exact_match/ci95_high": 0.84, "asr/wer": 0.35, "asr/wer/ci95_low": 0.30,
                                     "asr/wer/ci95_high": 0.40, "lm/perplexity": 2.0, "only/a": 1.0},
                 {"seed": 0, "fusion": "prefix", "fuse_epochs": 4.0})
    b = fake_run(tmp_path, "B-run", {"vqa/exact_match": 0.88, "vqa/exact_match/ci95_low": 0.86,
                                     "vqa/exact_match/ci95_high": 0.90, "asr/wer": 0.40, "asr/wer/ci95_low": 0.35,
                                     "asr/wer/ci95_high": 0.45, "lm/perplexity": 3.0},
                 {"seed": 0, "fusion": "<b>cross</b>", "fuse_epochs": 4.0})
    return [compare.read_run(a), compare.read_run(b)]


def test_differences_beyond_intervals_hand_worked(two_runs):
    table = compare.metric_table(two_runs).set_index("metric")
    assert table.loc["vqa/exact_match", "differs"] == "A-run vs B-run"
    assert table.loc["asr/wer", "differs"] == "" and table.loc["lm/perplexity", "differs"] == ""
    assert not table.loc["only/a", "shared"] and table.loc["vqa/exact_match", "shared"]
    assert list(table.index[:2]) == ["vqa/exact_match", "asr/wer"]  # headline order first
    assert compare.separated((0.1, 0.2), (0.2, 0.3)) is False  # touching intervals overlap


def test_only_differing_parameters_are_listed(two_runs):
    params = compare.param_table(two_runs)
    assert params["parameter"].tolist() == ["fusion"]
    assert params.iloc[0]["B-run"] == "<b>cross</b>"


def test_page_is_self_contained_and_escaped(two_runs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    page = compare.write_page(two_runs, out).read_text()
    assert "data:image/png;base64," in page and 'src="compare.png"' not in page
    assert "<b>cross</b>" not in page and "&lt;b&gt;cross&lt;/b&gt;" in page
    assert "1 of 4 metrics differ beyond their 95% intervals" in page
    assert (out / "compare.csv").read_text().startswith("metric,shared,A-run")


def test_cli_prints_the_table_and_writes_a_new_folder(two_runs, tmp_path, capsys):
    reports = tmp_path / "reports"
    assert cli.main(["compare", str(two_runs[0].path), str(two_runs[1].path), "--reports", str(reports)]) == 0
    out = capsys.readouterr().out
    assert "A = A-run, B = B-run" in out and "fusion" in out and "A≠B" in out
    assert "0.82 [0.8, 0.84]" in out
    (folder,) = reports.iterdir()
    assert folder.name.endswith("-compare") and (folder / "index.html").exists()


def test_cli_refuses_a_folder_that_is_not_a_run(tmp_path, two_runs, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["compare", str(two_runs[0].path), str(tmp_path / "empty")]) == 2
    assert "has no run.json or metrics.json" in capsys.readouterr().err
    assert cli.main(["compare", str(two_runs[0].path)]) == 2
