"""Joint CTC–attention decoding: the CTC head overrules the GPT where the clip spells something
else, and ends the transcript where the clip ends; 04's generation uses it for transcripts only."""
import math

import pytest
import torch

from mbmlab.metrics import joint_decoding
from mbmlab.metrics.generate import ask, generate
from mbmlab.metrics.vqa import normalise_answer
from mbmlab.models import ctc

TEXTS = ["", "a", " red", " blue", " circle", " bl", "", "?"]  # id 0 the end of text, id 6 a prompt token
EOS, PROMPT, QUESTION_MARK = 0, 6, 7


def spelling(text: str, peak: float = 0.9) -> torch.Tensor:
    """(T, C) log-probabilities of a clip that spells ``text``: one frame per character, a blank
    frame after each, ``peak`` on the frame's symbol and the rest spread evenly."""
    symbols = [s for c in text for s in (ctc.CHARACTERS.index(c) + 1, ctc.BLANK)]
    classes = len(ctc.CHARACTERS) + 1
    rows = torch.full((len(symbols), classes), (1 - peak) / (classes - 1), dtype=torch.float64)
    rows[torch.arange(len(symbols)), symbols] = peak
    return rows.log()


def choose(weight: float, generated: list[int], gpt: dict[int, float], heard: str = "a blue") -> int:
    lp = spelling(heard)
    scorer = joint_decoding.JointCtcScores(lp[None], torch.tensor([len(lp)]), TEXTS, EOS, 2, weight,
                                           special_ids=frozenset({EOS, PROMPT}))
    logits = torch.zeros(1, len(TEXTS))
    for token, value in gpt.items():
        logits[0, token] = value
    scores = scorer(torch.tensor([[PROMPT, PROMPT, *generated]]), logits)
    assert scores[0, PROMPT] == -math.inf  # the prompt's own tokens are never written
    return int(scores.argmax())


def test_the_ctc_head_overrules_the_gpt_where_the_clip_spells_another_word():
    gpt = {2: 2.0, 3: 1.5}  # after "a" the GPT prefers " red"; the clip says "a blue"
    assert choose(0.0, [1], gpt) == 2
    assert choose(0.5, [1], gpt) == 3
    assert choose(0.5, [1], gpt, heard="a red") == 2


def test_the_transcript_ends_where_the_clip_ends():
    gpt = {4: 2.0, EOS: 1.0}  # after "a blue" the GPT would go on with " circle"
    assert choose(0.0, [1, 3], gpt) == 4
    assert choose(0.5, [1, 3], gpt) == EOS
    assert choose(0.5, [1, 3], gpt, heard="a blue circle") == 4


def test_a_token_the_head_cannot_spell_is_scored_as_a_pause_at_the_end():
    """The GPT expects "a blue?" where the clip goes on "circle": the "?" adds no character, and
    scored as free (CTC gain 0) it beat " circle" and repeated until the token limit ("is there a
    blue shape??????" on the default run). Scored as the end of what was heard, it loses there and
    stays the GPT's choice where the clip does end. Mutation: gain 0 for such tokens → fails."""
    gpt = {QUESTION_MARK: 3.0, 4: 1.0, EOS: 1.0}
    assert choose(0.0, [1, 3], gpt, heard="a blue circle") == QUESTION_MARK
    assert choose(0.5, [1, 3], gpt, heard="a blue circle") == 4
    assert choose(0.5, [1, 3], gpt, heard="a blue") == QUESTION_MARK


def test_a_finished_row_only_pads_and_a_weight_outside_zero_to_one_is_refused():
    assert choose(0.5, [1, 3, EOS], {4: 5.0}) == EOS
    with pytest.raises(ValueError, match="share in"):
        joint_decoding.JointCtcScores(spelling("a")[None], torch.tensor([2]), TEXTS, EOS, 2, 1.5)


def test_generation_decodes_jointly_only_the_transcripts(tokenizer, monkeypatch):
    import family

    model, processor = family.build(tokenizer, "gpt2", "resnet", ctc_characters=ctc.CHARACTERS)
    pixels = processor.pixel_values(family.pictures(3))
    out = processor.feature_extractor(family.clips(2), sampling_rate=16000, return_tensors="pt",
                                      padding="max_length", truncation=True, return_attention_mask=True)
    rows = []
    real = joint_decoding.JointCtcScores.__call__
    monkeypatch.setattr(joint_decoding.JointCtcScores, "__call__",
                        lambda self, ids, scores: rows.append(len(ids)) or real(self, ids, scores))
    kwargs = dict(max_new_tokens=4, progress=False, frame_mask=out["attention_mask"])
    plain = generate(model, processor, family.EXAMPLES, pixels, out["input_features"], **kwargs)
    assert not rows  # no weight: the GPT alone
    joint = generate(model, processor, family.EXAMPLES, pixels, out["input_features"], ctc_weight=0.3, **kwargs)
    asr = [i for i, e in enumerate(family.EXAMPLES) if e.task == "asr"]
    assert rows and set(rows) == {len(asr)}  # called for the ASR batch's rows, no other task's
    assert [p for i, p in enumerate(joint) if i not in asr] == [p for i, p in enumerate(plain) if i not in asr]
    assert all(set(normalise_answer(joint[i])) <= set(ctc.CHARACTERS) for i in asr)  # what the head can spell
    rows.clear()
    generate(model, processor, family.EXAMPLES, pixels, out["input_features"], ctc_weight=0.3, num_beams=2, **kwargs)
    assert set(rows) == {2 * len(asr)}  # beam search: each clip's beams are rows of the scorer's batch


def test_ask_transcribes_jointly_and_answers_a_spoken_question_from_its_transcript(tokenizer, monkeypatch):
    import family

    model, processor = family.build(tokenizer, "gpt2", "resnet", ctc_characters=ctc.CHARACTERS)
    picture, clip = family.pictures(1)[0], family.clips(1)[0]
    calls = []
    real = joint_decoding.JointCtcScores.__call__
    monkeypatch.setattr(joint_decoding.JointCtcScores, "__call__",
                        lambda self, ids, scores: calls.append(1) or real(self, ids, scores))
    heard = ask(model, processor, audio=clip, max_new_tokens=4)
    assert heard.task == "asr" and calls  # the clip alone: transcribed jointly
    spoken = ask(model, processor, image=picture, audio=clip, max_new_tokens=4)
    assert spoken.task == "spoken_vqa" and spoken.heard == heard.text
    if heard.text:  # then asked typed: the same answer as the transcript typed
        assert spoken.text == ask(model, processor, image=picture, question=heard.text, max_new_tokens=4).text
    direct = ask(model, processor, image=picture, audio=clip, max_new_tokens=4, cascade=False)
    assert direct.heard is None and direct.prompt == processor.prompt("spoken_vqa", "")
    calls.clear()
    ask(model, processor, audio=clip, max_new_tokens=4, ctc_weight=0.0)
    assert not calls  # no weight: the GPT alone


def test_a_wrong_transcript_is_a_search_error_when_the_head_prefers_the_reference():
    """Three clips that spell "a blue": two heard as "a red" (the head prefers the reference: search)
    and one "A blue?" (right after normalising); a fourth that spells "a red" heard so against the
    reference "a blue" (the head prefers what was heard: model). Each full probability is checked
    against torch's ctc_loss, the reference implementation."""
    clips = [spelling("a blue"), spelling("a blue"), spelling("a red"), spelling("a blue")]
    width = max(len(c) for c in clips)
    log_probs = torch.stack([torch.cat([c, c[-1:].expand(width - len(c), -1)]) for c in clips])
    lengths = torch.tensor([len(c) for c in clips])
    counts = joint_decoding.search_or_model_errors(log_probs, lengths, ["a blue"] * 4,
                                                   ["a red", "A blue?", "a red", "a red"])
    assert counts == {"clips": 4, "wrong": 3, "search": 2, "model": 1}
    scorer = ctc.PrefixScorer(clips[2], ctc.CHARACTERS)
    for text in ("a red", "a blue"):
        target = torch.tensor([ctc.CHARACTERS.index(c) + 1 for c in text])
        loss = torch.nn.functional.ctc_loss(clips[2][:, None], target[None], torch.tensor([len(clips[2])]),
                                            torch.tensor([len(target)]), blank=ctc.BLANK, reduction="sum")
        assert scorer.state(text).full == pytest.approx(-loss.item(), abs=1e-6)
