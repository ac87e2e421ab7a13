"""`mbmlab compare` on hand-made run folders: which differences a paired test establishes (and
that identical runs flag nothing), which parameters differ, a self-contained page, clear errors."""
import pytest

import helpers
from mbmlab.lab import cli, compare


def fake_run(folder, name, metrics, params, preset="default", status="ok"):
    return helpers.fake_run(folder / name, metrics, params, preset, status, total_seconds=12.5,
                            environment={"git commit": "abc"})


def predictions(folder, wrong_colours: bool = False, wrong_clips: int = 0):
    """Per-item files as 04 writes them: 40 images × (colour, shape) questions, 30 clips; the
    model answers every question right unless ``wrong_colours`` (a model that cannot see colour:
    a blank image), and transcribes every clip right but the first ``wrong_clips``."""
    import pandas as pd

    rows = [{"question": f"what {kind}?", "answer": answer, "question_type": kind, "prediction": answer,
             "image_id": f"img-{i}"} for i in range(40) for kind, answer in (("colour", "red"), ("shape", "circle"))]
    vqa = pd.DataFrame(rows)
    if wrong_colours:
        vqa.loc[vqa["question_type"] == "colour", "prediction"] = "blue"
    vqa.to_csv(folder / "vqa_predictions.csv", index=False)
    asr = pd.DataFrame({"reference": ["a red circle"] * 30, "prediction": ["a red circle"] * 30,
                        "clip_id": [f"clip-{k}" for k in range(30)]})
    asr.loc[:wrong_clips - 1, "prediction"] = "a blue square"
    asr.to_csv(folder / "asr_predictions.csv", index=False)


@pytest.fixture
def two_runs(tmp_path):
    # vqa: B cannot see colour (every colour question wrong): a paired difference on 40 images;
    # asr/wer: 1 clip of 30 differs — not established; lm/perplexity has no per-item file → never
    # tested, although the values differ
    a = fake_run(tmp_path, "A-run", {"vqa/exact_match": 1.0, "vqa/exact_match/ci95_low": 1.0,
                                     "vqa/exact_match/ci95_high": 1.0, "asr/wer": 0.0, "asr/wer/ci95_low": 0.0,
                                     "asr/wer/ci95_high": 0.0, "lm/perplexity": 2.0, "only/a": 1.0},
                 {"seed": 0, "fusion": "prefix", "fuse_epochs": 4.0})
    b = fake_run(tmp_path, "B-run", {"vqa/exact_match": 0.5, "vqa/exact_match/ci95_low": 0.5,
                                     "vqa/exact_match/ci95_high": 0.5, "asr/wer": 0.022, "asr/wer/ci95_low": 0.0,
                                     "asr/wer/ci95_high": 0.067, "lm/perplexity": 3.0},
                 {"seed": 0, "fusion": "<b>cross</b>", "fuse_epochs": 4.0})
    predictions(a)
    predictions(b, wrong_colours=True, wrong_clips=1)
    return [compare.read_run(a), compare.read_run(b)]


def test_a_blank_image_run_is_flagged_on_vqa_and_nothing_else(two_runs):
    table = compare.metric_table(two_runs).set_index("metric")
    assert table.loc["vqa/exact_match", "differs"].startswith("A-run vs B-run (+0.5 [")
    assert table.loc["asr/wer", "tested"] == 1 and table.loc["asr/wer", "differs"] == ""
    assert table.loc["lm/perplexity", "tested"] == 0 and table.loc["lm/perplexity", "differs"] == ""
    assert not table.loc["only/a", "shared"] and table.loc["vqa/exact_match", "shared"]
    assert table.index[0] == "vqa/exact_match"  # headline order first
    tests = compare.paired_tests(two_runs).set_index("metric")
    # 4 tests at once (vqa, its 2 question types, asr) → Holm multiplies the smallest p by 4
    assert len(tests) == 4 and tests.loc["vqa/exact_match/shape", "difference"] == 0.0
    assert tests.loc["vqa/exact_match", "p_holm"] == pytest.approx(min(1.0, 4 * tests.loc["vqa/exact_match", "p_value"]))


def test_two_runs_with_the_same_answers_flag_nothing(tmp_path):
    runs = []
    for name in ("seed0-a", "seed0-b"):
        folder = fake_run(tmp_path, name, {"vqa/exact_match": 1.0}, {"seed": 0})
        predictions(folder)
        runs.append(compare.read_run(folder))
    table = compare.metric_table(runs).set_index("metric")
    assert table.loc["vqa/exact_match", "tested"] == 1 and table.loc["vqa/exact_match", "differs"] == ""


def test_runs_on_other_test_items_are_not_paired(tmp_path, two_runs):
    import pandas as pd

    other = fake_run(tmp_path, "other", {"vqa/exact_match": 1.0}, {"seed": 0})
    predictions(other)
    frame = pd.read_csv(other / "vqa_predictions.csv")
    frame.assign(image_id=frame["image_id"] + "-x").to_csv(other / "vqa_predictions.csv", index=False)
    tests = compare.paired_tests([two_runs[0], compare.read_run(other)])
    assert "vqa/exact_match" not in set(tests["metric"]) and "asr/wer" in set(tests["metric"])


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
    assert "2 of 4 tested metrics differ (paired tests on the same test items, Holm-corrected over all 4 tests)" in page
    assert "<details><summary>A≠B</summary>A≠B (+0.5 [" in page  # the pair, its numbers folded beneath
    assert (out / "compare.csv").read_text().startswith("metric,shared,A-run")


def test_cli_prints_the_table_and_writes_a_new_folder(two_runs, tmp_path, capsys):
    reports = tmp_path / "reports"
    assert cli.main(["compare", str(two_runs[0].path), str(two_runs[1].path), "--reports", str(reports)]) == 0
    out = capsys.readouterr().out
    assert "A = A-run, B = B-run" in out and "fusion" in out and "A≠B" in out
    assert "0.5 [0.5, 0.5]" in out and "2 of 4 tested metrics differ" in out
    (folder,) = reports.iterdir()
    assert folder.name.endswith("-compare") and (folder / "index.html").exists()


def test_cli_refuses_a_folder_that_is_not_a_run(tmp_path, two_runs, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["compare", str(two_runs[0].path), str(tmp_path / "empty")]) == 2
    assert "has no run.json or metrics.json" in capsys.readouterr().err
    assert cli.main(["compare", str(two_runs[0].path)]) == 2


def seed_group(folder, name, seeds, values):
    """A ``mbmlab run --seeds`` folder by hand: one run per seed with its vqa/exact_match and
    asr/wer values, and the summary folder's seeds.json naming them."""
    import json

    runs = [helpers.fake_run(folder / f"{name}-seed{s}", {"vqa/exact_match": v, "asr/wer": w, "lm/perplexity": 2.0},
                             {"seed": s}) for s, (v, w) in zip(seeds, values)]
    group = folder / f"{name}-seeds"
    group.mkdir()
    (group / "seeds.json").write_text(json.dumps({"preset": "default", "seeds": seeds, "runs": [str(r) for r in runs]}))
    return group


def test_seed_groups_are_compared_with_t_intervals_over_seeds(tmp_path, capsys):
    """A blank-image configuration (VQA 0.50 ± 0.01 over seeds) against the default (0.99 ± 0.005):
    VQA differs, established; ASR WER moves by seed noise only (0.20, 0.25, 0.22 vs 0.21, 0.23,
    0.24): not established; a group against itself flags nothing. Mutation: a verdict read from
    the means alone (established = difference ≠ 0) flags WER and fails here."""
    default = seed_group(tmp_path, "default", [0, 1, 2], [(0.99, 0.20), (0.985, 0.25), (0.995, 0.22)])
    blank = seed_group(tmp_path, "blank", [0, 1, 2], [(0.50, 0.21), (0.51, 0.23), (0.49, 0.24)])
    groups = [compare.read_seed_group(default), compare.read_seed_group(blank)]
    table = compare.seed_tests(groups).set_index("metric")
    assert list(table.index) == ["vqa/exact_match", "asr/wer", "lm/perplexity"]  # headline order, shared only
    assert table.loc["vqa/exact_match", "difference"] == pytest.approx(0.49) and table.loc["vqa/exact_match", "established"]
    assert table.loc["vqa/exact_match", "test"] == "paired t" and table.loc["vqa/exact_match", "seeds"] == "3/3"
    assert not table.loc["asr/wer", "established"] and not table.loc["lm/perplexity", "established"]
    reports = tmp_path / "reports"
    assert cli.main(["compare", str(default), str(blank), "--reports", str(reports)]) == 0
    out = capsys.readouterr().out
    assert "1 of 3 tests differ across seeds" in out
    (folder,) = reports.iterdir()
    assert "established" in (folder / "index.html").read_text()
    same = compare.seed_tests([groups[0], compare.read_seed_group(default)])
    assert not same["established"].any()
    # other seeds in the two groups: Welch's t, never paired
    other = seed_group(tmp_path, "other", [5, 6, 7], [(0.50, 0.21), (0.51, 0.23), (0.49, 0.24)])
    assert set(compare.seed_tests([groups[0], compare.read_seed_group(other)])["test"]) == {"Welch t"}


def test_seed_groups_and_runs_are_not_mixed(tmp_path, two_runs, capsys):
    group = seed_group(tmp_path, "g", [0, 1], [(0.9, 0.2), (0.8, 0.3)])
    assert cli.main(["compare", str(two_runs[0].path), str(group)]) == 2
    assert "not both" in capsys.readouterr().err


def test_a_sweep_of_six_runs_still_flags_a_real_difference(tmp_path):
    """Six runs (15 pairs × 4 tests = 60 Holm-corrected tests): with the 1,000 sign flips of one
    test the smallest possible p (1/1001) times 60 is 0.06, so nothing could pass — a sweep's
    page said "0 of 9 differ" for 99.7% against 83.2% VQA. With flips enough for the number of tests
    the colour-blind runs are flagged against the seeing ones, and equal runs are not. Mutation:
    ``permutations_for`` returning 1,000 → fails (every adjusted p 0.0599)."""
    runs = []
    for k in range(6):
        folder = fake_run(tmp_path, f"run-{k}", {"vqa/exact_match": 1.0 if k % 2 else 0.5}, {"seed": k})
        predictions(folder, wrong_colours=not k % 2)
        runs.append(compare.read_run(folder))
    assert compare.permutations_for(60) == 24_000 and compare.permutations_for(1) == 1_000
    tests = compare.paired_tests(runs)
    assert len(tests) == 60
    vqa = tests[tests["metric"] == "vqa/exact_match"]
    seeing = {f"run-{k}" for k in (1, 3, 5)}
    mixed = vqa["pair"].map(lambda pair: len(set(pair.split(" vs ")) & seeing) == 1)
    assert (vqa.loc[mixed, "p_holm"] < 0.05).all() and mixed.sum() == 9
    assert (vqa.loc[~mixed, "p_holm"] >= 0.05).all()  # the same answers: nothing flagged
