"""Transcribing with the GPT and the audio tower's CTC head together (one-pass joint CTC–attention
decoding, Watanabe et al. 2017, "Hybrid CTC/Attention Architecture for End-to-End Speech
Recognition", section III-B; ESPnet's ``ctc_weight`` at inference).

The GPT proposes its ``candidates`` most likely next tokens; each is scored

    (1 − λ) · log p_gpt(token | prefix) + λ · (log ψ(prefix + token) − log ψ(prefix))

where ψ is the CTC prefix probability of the normalised text (``mbmlab.models.ctc.PrefixScorer``:
every transcript the clip's frames spell that starts with it) and λ is ``weight``; the end of text
scores the CTC probability of the prefix being the whole transcript, and so does a token that adds
nothing the head can spell (a "?", "."): the head cannot hear punctuation, so such a token is
scored as a pause at the end of what was heard — at 0 it would be free, and a GPT that expects
"shape?" wrote "is there a blue shape??????" over a clip that goes on "in the image" (measured on
the default run, docs/results.md). The GPT knows the language
(which words follow which), the CTC head where the sounds are; the GPT alone drifts to likely
sentences its audio tokens do not hold, the CTC head alone misspells (measured on the scenes run:
docs/results.md, "Transcribing with the CTC head too"). A ``transformers`` logits processor, so
greedy and beam search both use it.
"""
from __future__ import annotations

import math

import torch
from transformers import LogitsProcessor

from ..models import ctc
from .vqa import normalise_answer


class JointCtcScores(LogitsProcessor):
    """The combined scores for a batch of ``model.generate`` rows (``beams`` rows per clip).

    ``log_probs`` (N, T, C) and ``lengths`` (N,): the CTC head's output for the batch's clips;
    ``token_texts``: each vocabulary id's text ("" for special tokens, which the CTC head ignores);
    ``prompt_width``: the prompt's length in the rows (what follows it is the transcript so far).
    """

    def __init__(self, log_probs: torch.Tensor, lengths: torch.Tensor, token_texts: list[str], eos_token_id: int,
                 prompt_width: int, weight: float, characters: str = ctc.CHARACTERS, beams: int = 1,
                 candidates: int = 8, special_ids: frozenset[int] = frozenset()):
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"the CTC weight is a share in [0, 1], got {weight}")
        self.scorers = [ctc.PrefixScorer(lp[:n], characters) for lp, n in zip(log_probs, lengths.tolist(), strict=True)]
        self.token_texts, self.eos, self.width = token_texts, eos_token_id, prompt_width
        self.weight, self.beams, self.candidates, self.special = weight, beams, candidates, special_ids

    def text(self, ids: list[int]) -> str:
        """The transcript so far: the generated tokens' text up to the end of text."""
        if self.eos in ids:
            ids = ids[:ids.index(self.eos)]
        return "".join(self.token_texts[i] for i in ids)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        log_p = scores.float().log_softmax(dim=-1)  # greedy passes logits, beam search log-probabilities
        out = torch.full_like(log_p, -math.inf)
        top = log_p.topk(min(self.candidates, log_p.shape[-1]), dim=-1).indices.tolist()
        for row, ids in enumerate(input_ids[:, self.width:].tolist()):
            scorer, so_far = self.scorers[row // self.beams], self.text(ids)
            if self.eos in ids:  # a finished row: generate pads it whatever is chosen
                out[row, self.eos] = 0.0
                continue
            heard = normalise_answer(so_far)
            prefix = scorer.state(heard)
            if prefix is None:  # cannot happen from the empty prefix: only spellable tokens are taken
                out[row] = log_p[row]
                continue
            for token in set(top[row]) | {self.eos}:
                if token in self.special and token != self.eos:
                    continue
                text = heard if token == self.eos else normalise_answer(so_far + self.token_texts[token])
                if text == heard:  # the end of text, or a token the head cannot spell: a pause at the end
                    gain = prefix.full - prefix.psi
                else:
                    state = scorer.state(text)
                    if state is None:
                        continue
                    gain = state.psi - prefix.psi
                out[row, token] = (1 - self.weight) * log_p[row, token] + self.weight * gain
        return out


def search_or_model_errors(log_probs: torch.Tensor, lengths: torch.Tensor, references: list[str],
                           heard: list[str], characters: str = ctc.CHARACTERS) -> dict[str, int]:
    """Where the wrong transcripts come from: for each clip whose ``heard`` text differs from its
    reference (both normalised), does the CTC head (``log_probs`` (N, T, C), ``lengths``) give the
    reference the higher probability (a *search* error: the decoding missed a transcript the head
    prefers) or the heard one (a *model* error: the head itself hears it so)?"""
    out = {"clips": len(references), "wrong": 0, "search": 0, "model": 0}
    for lp, n, reference, text in zip(log_probs, lengths.tolist(), references, heard, strict=True):
        reference, text = normalise_answer(reference), normalise_answer(text)
        if reference == text:
            continue
        scorer = ctc.PrefixScorer(lp[:n], characters)
        states = [scorer.state(t) for t in (reference, text)]
        right, wrong = (s.full if s is not None else -math.inf for s in states)
        out["wrong"] += 1
        out["search" if right > wrong else "model"] += 1
    return out


def token_texts(tokenizer) -> tuple[list[str], frozenset[int]]:
    """Each id's text, and the ids of the special and added tokens (their text counted as empty)."""
    special = frozenset(tokenizer.all_special_ids) | frozenset(tokenizer.get_added_vocab().values())  # <image>, <audio>
    texts = [("" if i in special else tokenizer.decode([i])) for i in range(len(tokenizer))]
    return texts, special
