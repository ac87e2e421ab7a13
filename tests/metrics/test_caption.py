"""Caption metrics against hand-worked values and independent implementations (nltk's corpus
BLEU, rouge-score's LCS), never against the calls the code under test makes."""
import math

import pytest

from mbmlab.metrics import caption, caption_scores

# lower case, no punctuation: the PTB tokenizer leaves these as they are, so the independent
# implementations can take the same tokens by splitting on spaces
REFS = {"1": ["a blue rectangle on the left", "a blue box"], "2": ["a red circle"],
        "3": ["a small green triangle near a big circle"], "4": ["a gray circle and a red square"]}
PREDS = {"1": "a blue rectangle", "2": "a red triangle", "3": "a green triangle near a circle",
         "4": "a gray circle and a square"}


@pytest.fixture(scope="module")
def ours():
    return caption_scores(REFS, PREDS)


def test_bleu_1_hand_worked():
    # reference "a red circle", prediction "a blue circle": 2 of 3 unigrams match ("a", "circle"),
    # equal lengths so no brevity penalty: BLEU-1 = 2/3
    scores = caption_scores({"x": ["a red circle"]}, {"x": "a blue circle"}, meteor=False)
    assert scores["BLEU-1"] == pytest.approx(2 / 3, abs=1e-6)
    # bigrams: "a blue", "blue circle" vs "a red", "red circle": none match → BLEU-2 ≈ 0
    assert scores["BLEU-2"] < 1e-4


def test_bleu_4_of_the_corpus_by_hand(ours):
    """Clipped n-gram matches over the corpus: unigrams 17/18, bigrams 10/14, trigrams 6/10,
    4-grams 3/6 (the two 3-word captions have none); candidate length 18, closest reference
    lengths 3 + 3 + 8 + 7 = 21, so BP = exp(1 − 21/18) and
    BLEU-4 = BP · (17/18 · 10/14 · 6/10 · 3/6)^(1/4) = 0.56775."""
    expected = math.exp(1 - 21 / 18) * (17 / 18 * 10 / 14 * 6 / 10 * 3 / 6) ** 0.25
    assert ours["BLEU-4"] == pytest.approx(expected, rel=1e-6)
    assert ours["BLEU-1"] == pytest.approx(math.exp(1 - 21 / 18) * 17 / 18, rel=1e-6)


def test_bleu_agrees_with_nltk_corpus_bleu():
    """On captions of 4+ words: nltk counts max(1, #n-grams) in the precision denominator, so a
    caption shorter than n changes its BLEU-n but not COCO's (the case above)."""
    from nltk.translate.bleu_score import corpus_bleu

    refs = {k: v for k, v in REFS.items() if k in ("3", "4")} | {"5": ["a blue rectangle on the left side"]}
    preds = {"3": PREDS["3"], "4": PREDS["4"], "5": "a blue rectangle on the right"}
    ours = caption_scores(refs, preds, meteor=False)
    ids = sorted(refs)
    for n in range(1, 5):
        expected = corpus_bleu([[r.split() for r in refs[i]] for i in ids], [preds[i].split() for i in ids],
                               weights=tuple([1 / n] * n))
        assert ours[f"BLEU-{n}"] == pytest.approx(expected, rel=1e-6), n


def test_rouge_l_agrees_with_rouge_score_lcs(ours):
    """COCO's ROUGE-L: per image, the best LCS precision and recall over its references, then
    F = (1 + β²)·P·R / (R + β²·P) with β = 1.2; averaged over images."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=type("T", (), {"tokenize": staticmethod(str.split)})())
    beta, per_image = 1.2, []
    for i, pred in PREDS.items():
        scores = [scorer.score(ref, pred)["rougeL"] for ref in REFS[i]]
        p, r = max(s.precision for s in scores), max(s.recall for s in scores)
        per_image.append(0.0 if p == 0 or r == 0 else (1 + beta ** 2) * p * r / (r + beta ** 2 * p))
    assert ours["ROUGE-L"] == pytest.approx(sum(per_image) / len(per_image), rel=1e-9)


def test_meteor_orders_captions_and_is_bounded(ours):
    perfect = caption_scores(REFS, {i: r[0] for i, r in REFS.items()})
    assert 0 < ours["METEOR"] < perfect["METEOR"] <= 1
    assert perfect["ROUGE-L"] == pytest.approx(1.0) and perfect["BLEU-4"] == pytest.approx(1.0, abs=1e-6)


def test_spice_is_reported_unavailable_with_its_reason():
    from mbmlab.metrics.caption import SPICE_UNAVAILABLE

    assert "SPICE" not in caption_scores({"x": ["a red circle"]}, {"x": "a red circle"}, meteor=False)
    assert "download" in SPICE_UNAVAILABLE


def cider_d(references: dict[str, list[str]], predictions: dict[str, str], sigma: float = 6.0) -> float:
    """CIDEr-D written from the paper, not from pycocoevalcap (Vedantam, Zitnick & Parikh 2015,
    "CIDEr: Consensus-based Image Description Evaluation", eqs. 2–4 and §"CIDEr-D"): n-grams
    n = 1..4 weighted by TF-IDF, the IDF over the corpus' images (log N − log df, df = images whose
    references hold the n-gram); per n the cosine of the candidate's and each reference's vectors,
    with the candidate's weights clipped at the reference's and a Gaussian penalty on the length
    difference (σ = 6); averaged over references and over n, times 10."""
    import math
    from collections import Counter

    def grams(sentence, n):
        words = sentence.split()
        return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))

    images = list(references)
    total = 0.0
    for image in images:
        per_n = []
        for n in range(1, 5):
            df = Counter(g for i in images for g in set().union(*(grams(r, n) for r in references[i])))

            def vector(sentence):
                return {g: c * (math.log(len(images)) - math.log(max(1.0, df[g]))) for g, c in grams(sentence, n).items()}

            candidate = vector(predictions[image])
            scores = []
            for reference in references[image]:
                ref = vector(reference)
                dot = sum(min(w, ref.get(g, 0.0)) * ref.get(g, 0.0) for g, w in candidate.items())
                norms = math.sqrt(sum(w * w for w in candidate.values())) * math.sqrt(sum(w * w for w in ref.values()))
                delta = len(predictions[image].split()) - len(reference.split())
                scores.append((dot / norms if norms else 0.0) * math.exp(-delta ** 2 / (2 * sigma ** 2)))
            per_n.append(sum(scores) / len(scores))
        total += 10 * sum(per_n) / 4
    return total / len(images)


def test_cider_d_agrees_with_an_implementation_written_from_the_paper():
    references = {"a": ["a small red circle", "a red circle on white"], "b": ["a large blue square", "a blue square"],
                  "c": ["a green triangle left of a red circle", "a green triangle and a red circle"]}
    predictions = {"a": "a red circle", "b": "a large blue square", "c": "a green triangle left of a circle"}
    gts = {k: v for k, v in references.items()}
    res = {k: [v] for k, v in predictions.items()}
    scores, per_image = caption.tokenized_scores(gts, res, meteor=False)
    assert scores["CIDEr"] == pytest.approx(cider_d(references, predictions), abs=1e-9)
    assert per_image["CIDEr"][1] > per_image["CIDEr"][0]  # b matches a reference word for word
