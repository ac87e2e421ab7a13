"""VQA accuracy as VQA-v2 defines it (Antol et al. 2015, §2.1; Goyal et al. 2017; the evaluation
page https://visualqa.org/evaluation.html), written from that description.

An answer is normalised — lower case; periods dropped unless inside a number; commas between
digits dropped; the other punctuation dropped, or replaced by a space where it separates words;
number words "zero"…"ten" (and "none") written as digits; the articles "a", "an", "the" removed;
a few apostrophe-less contractions given their apostrophe — and then

    acc(a) = mean over the 10 subsets of 9 of the 10 human answers of min(#{humans in the subset who said a} / 3, 1)

so an answer given by 3 or more of the 10 annotators scores 1, by 2 scores 0.6 (see the tests),
by 1 scores 0.3. With a single reference answer the same formula would cap at 1/3, so an item
with one reference is scored by exact match of the normalised answers instead, and a run whose
items all have one reference reports ``exact_match``, not "VQA accuracy".
"""
from __future__ import annotations

import re
from itertools import combinations

NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
           "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = {"a", "an", "the"}
# common answers written without their apostrophe (our own short list, not the official table)
CONTRACTIONS = {"dont": "don't", "doesnt": "doesn't", "isnt": "isn't", "arent": "aren't", "cant": "can't",
                "wont": "won't", "didnt": "didn't", "wasnt": "wasn't", "werent": "weren't", "hasnt": "hasn't",
                "havent": "haven't", "couldnt": "couldn't", "shouldnt": "shouldn't", "wouldnt": "wouldn't",
                "im": "i'm", "ive": "i've", "its": "it's", "thats": "that's", "whats": "what's",
                "theres": "there's", "theyre": "they're", "youre": "you're", "oclock": "o'clock"}
_PUNCTUATION = re.escape(";/[]\"{}()=+\\_-><@`,?!")
_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d)")
_PERIOD = re.compile(r"(?<!\d)\.(?!\d)")


def normalise(answer: str) -> str:
    text = _DIGIT_COMMA.sub("", answer.replace("\n", " ").replace("\t", " ").strip().lower())
    text = _PERIOD.sub("", text)
    text = re.sub(rf"[{_PUNCTUATION}]", " ", text)
    words = [NUMBERS.get(w, w) for w in text.split()]
    words = [CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES]
    return " ".join(words)


def answer_accuracy(prediction: str, answers: list[str]) -> float:
    """One item's score: the VQA-v2 formula for several reference answers, exact match of the
    normalised answers for one."""
    if not answers:
        raise ValueError("an item needs at least one reference answer")
    predicted = normalise(prediction)
    given = [normalise(a) for a in answers]
    if len(given) == 1:
        return float(predicted == given[0])
    subsets = list(combinations(range(len(given)), len(given) - 1))
    return sum(min(sum(given[i] == predicted for i in subset) / 3, 1.0) for subset in subsets) / len(subsets)


def vqa_v2_accuracy(predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    """Mean item score, named for what it is: ``vqa_accuracy`` when any item has several
    reference answers, ``exact_match`` when every item has one."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} reference lists")
    if not predictions:
        raise ValueError("no answers to score")
    scores = [answer_accuracy(p, r) for p, r in zip(predictions, references)]
    name = "vqa_accuracy" if any(len(r) > 1 for r in references) else "exact_match"
    return {name: sum(scores) / len(scores)}
