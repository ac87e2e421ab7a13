"""The metrics as local ``evaluate`` modules: each loads offline by path, computes what its
function computes on a hand-worked case, and they combine."""
import math

import evaluate
import pytest

from mbmlab.metrics import modules


@pytest.mark.parametrize("name", modules.NAMES)
def test_every_module_loads_offline_by_path(name):
    assert modules.load_module(name).name  # evaluate.load on a folder: no hub, no network


def test_hand_worked_values():
    vqa = modules.load_module("vqa_accuracy").compute(predictions=["red", "Blue"], references=[["red"] * 2 + ["blue"] * 8, ["blue"]])
    assert vqa == {"vqa_accuracy": pytest.approx((0.6 + 1.0) / 2)}  # 2 of 10 annotators: 0.6 (test_vqa_v2)
    # 1 substitution in 4 words + 0 in 2: WER = 1/6
    wer = modules.load_module("speech_error_rate").compute(predictions=["what shape is there", "a circle"],
                                                    references=["What colour is there?", "a circle"])
    assert wer["wer"] == pytest.approx(1 / 6)
    recall = modules.load_module("retrieval_recall").compute(predictions=[["b", "a", "c"], ["c", "a", "b"]],
                                                      references=["a", "c"], ks=(1, 2))
    assert recall == {"recall@1": 0.5, "recall@2": 1.0}
    ppl = modules.load_module("corpus_perplexity").compute(predictions=[2.0, 4.0], references=[1, 3])
    assert ppl["perplexity"] == pytest.approx(math.exp(6 / 4))  # not exp((2/1 + 4/3) / 2)
    # (4-grams need 4 words: a 3-word sentence has BLEU 0 even when it is right)
    same = modules.load_module("sacrebleu_chrf").compute(predictions=["a red circle on the left"],
                                                  references=[["a red circle on the left"]])
    assert same["bleu"] == pytest.approx(100.0) and same["chrf"] == pytest.approx(100.0)


def test_chrf_agrees_with_a_hand_count():
    """chrF (β = 2) of "ab" against "ac": character 1-grams a,b vs a,c → P = R = 1/2; 2-grams
    "ab" vs "ac" → 0; sacrebleu averages P and R over the n-gram orders that exist (1 and 2
    here), so P = R = 1/4 and chrF = 100 · (1+4)·P·R / (4P + R) = 25."""
    score = modules.load_module("sacrebleu_chrf").compute(predictions=["ab"], references=[["ac"]])["chrf"]
    assert score == pytest.approx(25.0, abs=0.5)


def test_modules_combine():
    combined = evaluate.combine([modules.path("vqa_accuracy"), modules.path("sacrebleu_chrf")])
    out = combined.compute(predictions=["blue"], references=[["blue"]])
    assert out["exact_match"] == 1.0 and out["chrf"] == pytest.approx(100.0)


def test_unknown_module_is_refused():
    with pytest.raises(ValueError, match="unknown metric module 'bleurt'"):
        modules.path("bleurt")
