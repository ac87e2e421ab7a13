"""The fusion study's summary and findings on a hand-made table of results."""
import math

import pandas as pd
import pytest

from mbmlab.analyses import fusion_study

def row(fusion, seed, vqa, wer, seconds, validation_vqa, validation_wer):
    return {"fusion": fusion, "seed": seed, "vqa/exact_match": vqa, "vqa/exact_match/colour": 0.8, "asr/wer": wer,
            "train/seconds": seconds, "train/steps": 100, "validation/vqa/exact_match": validation_vqa,
            "validation/asr/wer": validation_wer}


# prefix beats early on VQA by 0.19–0.20 in every seed; WER differs by −0.05, +0.15, +0.04 (noise);
# colour is 0.8 for both. On validation early wins both (so it is chosen, whatever test says).
ROWS = pd.DataFrame([
    row("prefix", 0, 0.90, 0.5, 10.0, 0.80, 0.60), row("prefix", 1, 0.92, 0.7, 12.0, 0.81, 0.62),
    row("prefix", 2, 0.91, 0.6, 11.0, 0.79, 0.61),
    row("early", 0, 0.70, 0.55, 8.0, 0.85, 0.50), row("early", 1, 0.73, 0.55, 9.0, 0.86, 0.52),
    row("early", 2, 0.71, 0.56, 8.5, 0.84, 0.51),
])


def test_summary_is_mean_and_sample_std_per_strategy():
    summary = fusion_study.summarise(ROWS)
    assert list(summary.index) == ["prefix", "early"] and summary.loc["prefix", "seeds"] == 3
    assert math.isclose(summary.loc["prefix", "vqa/exact_match"], 0.91)
    # sample std of 0.90, 0.92, 0.91: sqrt((0.01² + 0.01² + 0) / 2) = 0.01
    assert math.isclose(summary.loc["prefix", "vqa/exact_match std"], 0.01)
    assert fusion_study.metric_columns(ROWS)[:2] == ["vqa/exact_match", "vqa/exact_match/colour"]


def test_findings_say_established_only_where_the_seed_level_test_does():
    lines = {line.split(" (test)")[0]: line for line in fusion_study.findings(ROWS)}
    # VQA: paired differences 0.20, 0.19, 0.20 → mean 0.1967, far from 0 across 3 seeds
    assert lines["vqa/exact_match"].startswith("vqa/exact_match (test): prefix 0.91, early 0.7133")
    assert "prefix − early +0.197 [" in lines["vqa/exact_match"] and ": established." in lines["vqa/exact_match"]
    # WER: −0.05, +0.15, +0.04 → the interval holds 0
    assert "not established" in lines["asr/wer"]
    # colour: the same in every seed → difference 0, p = 1
    assert "prefix − early +0 [+0, +0] over 3 seeds, Holm p 1: not established" in lines["vqa/exact_match/colour"]
    table = fusion_study.comparisons(ROWS)
    # VQA, colour, WER and training time (a cost, lower is better); steps are a budget figure
    assert table["metric"].tolist() == ["vqa/exact_match", "vqa/exact_match/colour", "asr/wer", "train/seconds"]
    # Holm over the 4 tests: the smallest p (VQA's) is multiplied by 4
    vqa = table.set_index("metric").loc["vqa/exact_match"]
    assert vqa["p_value"] == table["p_value"].min() and vqa["p_holm"] == pytest.approx(4 * vqa["p_value"])


def test_one_seed_establishes_nothing():
    lines = fusion_study.findings(ROWS[ROWS["seed"] == 0])
    assert all("1 seed: not established" in line for line in lines)


def test_the_choice_reads_validation_and_the_conclusion_says_what_test_shows():
    summary = fusion_study.summarise(ROWS)
    text, ranking, _, record = fusion_study.conclusion(summary, ROWS, 3)
    # on test prefix wins VQA (established) and early WER (not established); on validation early wins both
    assert record["chosen"] == "early" and record["chosen_on"] == "validation"
    assert "Chosen on the **validation** split" in text and "**early**" in text
    assert "1 of its differences on the tasks' headline metrics are established" in text
    assert list(ranking.columns) == ["validation/vqa/exact_match", "validation/asr/wer", "mean rank"]


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
