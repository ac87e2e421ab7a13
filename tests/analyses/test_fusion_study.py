"""The fusion study's summary and findings on a hand-made table of results."""
import math

import pandas as pd

from mbmlab.analyses import fusion_study

ROWS = pd.DataFrame([
    {"fusion": "prefix", "seed": 0, "vqa/exact_match": 0.90, "vqa/exact_match/colour": 0.8, "asr/wer": 0.5,
     "train/seconds": 10.0, "train/steps": 100},
    {"fusion": "prefix", "seed": 1, "vqa/exact_match": 0.92, "vqa/exact_match/colour": 0.8, "asr/wer": 0.7,
     "train/seconds": 12.0, "train/steps": 100},
    {"fusion": "early", "seed": 0, "vqa/exact_match": 0.70, "vqa/exact_match/colour": 0.8, "asr/wer": 0.55,
     "train/seconds": 8.0, "train/steps": 100},
    {"fusion": "early", "seed": 1, "vqa/exact_match": 0.72, "vqa/exact_match/colour": 0.8, "asr/wer": 0.55,
     "train/seconds": 9.0, "train/steps": 100},
])


def test_summary_is_mean_and_sample_std_per_strategy():
    summary = fusion_study.summarise(ROWS)
    assert list(summary.index) == ["prefix", "early"] and summary.loc["prefix", "seeds"] == 2
    assert math.isclose(summary.loc["prefix", "vqa/exact_match"], 0.91)
    # sample std of 0.90 and 0.92: sqrt(((0.01)² + (0.01)²) / (2 − 1)) = 0.01·√2
    assert math.isclose(summary.loc["prefix", "vqa/exact_match std"], 0.01 * math.sqrt(2))
    assert fusion_study.metric_columns(ROWS)[:2] == ["vqa/exact_match", "vqa/exact_match/colour"]


def test_findings_name_the_best_and_say_whether_the_margin_beats_the_spread():
    lines = {line.split(":")[0]: line for line in fusion_study.findings(fusion_study.summarise(ROWS))}
    # VQA: 0.91 vs 0.71, margin 0.2 > 2 × 0.0141
    assert lines["vqa/exact_match"].startswith("vqa/exact_match: prefix 0.91, then early 0.71")
    assert "more than twice the seeds' spread" in lines["vqa/exact_match"]
    # WER, lower is better: early 0.55 vs prefix 0.6 ± 0.141 (std of 0.5, 0.7): 0.05 < 2 × 0.141
    assert lines["asr/wer"].startswith("asr/wer: early 0.55, then prefix 0.6 (margin 0.05;")
    assert lines["asr/wer"].endswith("within twice the seeds' spread (0.141): not a clear difference).")
    assert lines["vqa/exact_match/colour"] == "vqa/exact_match/colour: prefix and early tie at 0.8."
    assert "train/steps" not in lines  # a budget figure, not a result
    # prefix wins VQA, early wins WER: mean ranks tie at 1.5 and early trained faster (8.5 s vs 11 s)
    assert fusion_study.choose(fusion_study.summarise(ROWS)) == "early"


def test_findings_with_one_seed_say_no_spread_was_measured():
    lines = fusion_study.findings(fusion_study.summarise(ROWS[ROWS["seed"] == 0]))
    assert any("one seed each, so no spread was measured" in line for line in lines)


def test_choice_is_the_best_mean_rank_over_the_tasks():
    summary = pd.DataFrame({
        # xattn wins VQA and captions, loses speech twice; prefix is second, second, first, first
        "vqa/exact_match": [0.93, 0.95, 0.79], "caption/CIDEr": [7.4, 7.5, 4.5], "asr/wer": [0.40, 0.78, 0.45],
        "spoken_vqa/exact_match": [0.59, 0.33, 0.49], "train/seconds": [200.0, 250.0, 250.0],
    }, index=["prefix", "cross_attention", "early"])
    ranking = fusion_study.ranks(summary)
    assert ranking["mean rank"].to_dict() == {"prefix": 1.5, "cross_attention": 2.0, "early": 2.5}
    assert fusion_study.choose(summary) == "prefix"
    # a tie on mean rank goes to the faster strategy
    tied = pd.DataFrame({"vqa/exact_match": [0.9, 0.8], "caption/CIDEr": [7.0, 6.0], "asr/wer": [0.8, 0.4],
                         "spoken_vqa/exact_match": [0.3, 0.6], "train/seconds": [300.0, 200.0]}, index=["a", "b"])
    assert fusion_study.ranks(tied)["mean rank"].tolist() == [1.5, 1.5] and fusion_study.choose(tied) == "b"
