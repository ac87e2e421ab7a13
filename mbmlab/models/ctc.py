"""Connectionist temporal classification over characters, and the training batches' audio
augmentation (speed perturbation, SpecAugment), for the audio tower.

CTC (Graves et al. 2006, "Connectionist Temporal Classification: Labelling Unsegmented Sequence
Data with Recurrent Neural Networks"): the encoder emits, per frame, a distribution over the
characters and a *blank*; a transcript's probability is the sum over every frame-level path that
collapses to it (merge repeats, then drop blanks). ``torch.nn.functional.ctc_loss`` computes that
sum with the forward algorithm; the hand-worked cases are in ``tests/models/test_ctc.py``.
Pretraining the encoder with a CTC head before it joins the decoder, and keeping CTC as an
auxiliary loss beside the decoder's, is the joint CTC–attention recipe (Kim, Hori & Watanabe 2017).

SpecAugment (Park et al. 2019, "SpecAugment: A Simple Data Augmentation Method for Automatic
Speech Recognition", section 2): frequency masks (``F`` consecutive mel bins, ``F`` drawn from
[0, f]) and time masks (``t`` consecutive frames, ``t`` from [0, T] and at most ``p`` of the clip),
set to the clip's mean log-mel value (ESPnet's choice; the paper sets the normalised features'
mean, 0). Time warping is left out (the paper found it the least useful part). Only training
batches are augmented.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# the CTC vocabulary: index 0 is the blank, then these characters; what metrics.vqa.normalise_answer
# leaves of an English transcript (lower case, no punctuation) is spelt with them
# (mbmlab.training.ctc.targets)
CHARACTERS = " 'abcdefghijklmnopqrstuvwxyz0123456789"
BLANK = 0


def frame_lengths(frame_mask: torch.Tensor, frames: int) -> torch.Tensor:
    """Encoder frames that hold each clip: Whisper's conv stem halves the log-mel frame rate."""
    return ((frame_mask.sum(dim=1) + 1) // 2).clamp(max=frames).long()


def ctc_loss(log_probs: torch.Tensor, lengths: torch.Tensor, flat_targets: torch.Tensor,
             target_lengths: torch.Tensor) -> torch.Tensor:
    """Mean over clips of −log p(transcript | clip) / transcript length (``F.ctc_loss``'s "mean").
    ``log_probs``: (N, T, C) log-softmax outputs. A clip too short for its transcript contributes 0
    (``zero_infinity``) rather than an infinite loss."""
    return F.ctc_loss(log_probs.transpose(0, 1).float(), flat_targets, lengths, target_lengths, blank=BLANK,
                      reduction="mean", zero_infinity=True)


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor, characters: str = CHARACTERS) -> list[str]:
    """Best path: the most likely symbol per frame, repeats merged, blanks dropped."""
    out = []
    for row, n in zip(log_probs.argmax(dim=-1).tolist(), lengths.tolist(), strict=True):
        chars, previous = [], BLANK
        for symbol in row[:n]:
            if symbol != previous and symbol != BLANK:
                chars.append(characters[symbol - 1])
            previous = symbol
        out.append(" ".join("".join(chars).split()))
    return out


class CtcHead(nn.Module):
    """Encoder frames → log-probabilities over blank + characters."""

    def __init__(self, width: int, characters: str = CHARACTERS):
        super().__init__()
        self.characters = characters
        self.proj = nn.Linear(width, len(characters) + 1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.proj(frames).log_softmax(dim=-1)


def speed_perturb(features: torch.Tensor, frame_mask: torch.Tensor, factors=(0.9, 1.0, 1.1),
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip played at a speed drawn from ``factors`` (Ko et al. 2015, "Audio Augmentation for
    Speech Recognition", use 0.9, 1.0 and 1.1): its log-mel frames resampled in time (linear
    interpolation; the tempo changes, the pitch does not) to ``round(length / factor)`` frames,
    the rest padded with the clip's own padding value. A clip that would outgrow the chunk keeps
    its speed. Returns (features, frame mask) — the mask follows the new lengths."""
    out, mask = features.clone(), frame_mask.clone()
    frames = features.shape[2]
    for i in range(len(features)):
        factor = factors[int(torch.randint(0, len(factors), (1,), generator=generator))]
        length = int(frame_mask[i].sum())
        new = int(round(length / factor))
        if factor == 1.0 or length < 2 or new > frames:
            continue
        pad = features[i, :, -1:] if length < frames else features[i].mean(dim=1, keepdim=True)
        out[i] = pad.expand(-1, frames)
        out[i, :, :new] = F.interpolate(features[i:i + 1, :, :length], size=new, mode="linear",
                                        align_corners=True)[0]
        mask[i] = 0
        mask[i, :new] = 1
    return out, mask


VTLP_BOUNDARY = 0.8  # of the top mel bin: below it the warp is linear, above it pinned to the top


def vocal_tract_perturb(features: torch.Tensor, warp: float,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Vocal tract length perturbation (Jaitly & Hinton 2013, "Vocal Tract Length Perturbation
    (VTLP) improves speech recognition"): each clip's frequency axis warped by a factor α drawn
    from [1 − ``warp``, 1 + ``warp``] — another speaker's vocal tract. They warp the linear
    frequencies before the mel filterbank, piecewise linear with the top frequency fixed; here the
    same piecewise-linear map is applied to the mel bins of ``features`` (N, bins, frames): bin k
    reads bin k·α below ``VTLP_BOUNDARY`` × the top bin, and the segment from there to the top bin
    is stretched to keep the top fixed (linear interpolation between bins)."""
    if not 0.0 <= warp <= 0.2:
        raise ValueError(f"the VTLP warp is a share in [0, 0.2], got {warp}")
    if warp == 0.0:
        return features
    n, bins, _ = features.shape
    top = bins - 1
    k = torch.arange(bins, dtype=torch.float64)
    boundary = VTLP_BOUNDARY * top
    out = torch.empty_like(features)
    for i in range(n):
        alpha = 1 - warp + 2 * warp * float(torch.rand((), generator=generator, dtype=torch.float64))
        source = torch.where(k <= boundary, k * alpha,
                             boundary * alpha + (k - boundary) * (top - boundary * alpha) / (top - boundary))
        source = source.clamp(0, top)
        low = source.floor().long().clamp(max=top - 1)
        frac = (source - low).to(features.dtype)[:, None]
        out[i] = (1 - frac) * features[i, low] + frac * features[i, low + 1]
    return out


def augment(features: torch.Tensor, frame_mask: torch.Tensor | None, generator: torch.Generator | None = None,
            warp: float = 0.0, masks: dict | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The training batches' audio augmentation: speed perturbation (when the frame mask is
    known), vocal tract length perturbation (with ``warp``), then SpecAugment (``masks``: its
    keyword arguments where they differ from its defaults — ``time_masks``, ``time_fraction`` …).
    Returns (features, frame mask)."""
    if frame_mask is not None:
        features, frame_mask = speed_perturb(features, frame_mask, generator=generator)
    features = vocal_tract_perturb(features, warp, generator=generator)
    return spec_augment(features, frame_mask, generator=generator, **(masks or {})), frame_mask


def spec_augment(features: torch.Tensor, frame_mask: torch.Tensor | None = None, *, freq_masks: int = 2,
                 freq_width: int = 15, time_masks: int = 2, time_width: int = 40, time_fraction: float = 0.2,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """A masked copy of log-mel ``features`` (N, mel bins, frames). Per clip: ``freq_masks`` bands
    of up to ``freq_width`` bins and ``time_masks`` spans of up to ``min(time_width, time_fraction ×
    the clip's frames)`` frames within the clip (``frame_mask``), set to the clip's mean. Park et
    al.'s LibriSpeech policy is F=27 (of 80 bins), T=100 frames, p=1.0 for 10–30 s utterances;
    ours are 1–3 s, so the time masks are shorter."""
    out = features.clone()
    n, bins, frames = features.shape
    lengths = frame_mask.sum(dim=1).tolist() if frame_mask is not None else [frames] * n

    def draw(high: int) -> int:
        return int(torch.randint(0, max(high, 0) + 1, (1,), generator=generator))

    for i in range(n):
        length = int(lengths[i])
        fill = features[i, :, :max(length, 1)].mean()
        for _ in range(freq_masks):
            width = draw(min(freq_width, bins))
            start = draw(bins - width)
            out[i, start:start + width, :] = fill
        for _ in range(time_masks):
            width = draw(min(time_width, int(time_fraction * length)))
            start = draw(length - width)
            out[i, :, start:start + width] = fill
    return out


# -- prefix scores, for decoding jointly with the GPT (mbmlab.metrics.joint_decoding) ---------------
#
# Watanabe, Hori, Kim, Hershey & Hayashi 2017, "Hybrid CTC/Attention Architecture for End-to-End
# Speech Recognition", Algorithm 2 (ESPnet's ``CTCPrefixScore``): for a prefix g of characters,
# r^n_t(g) / r^b_t(g) are the probabilities of the frame-level paths over frames 1..t that collapse to
# g and end in a non-blank / blank symbol. Extending g by a character c:
#   Φ_t = r^b_t(g) + r^n_t(g)  (only r^b_t(g) when c repeats g's last character: a repeat needs a blank)
#   r^n_t(h) = (r^n_{t−1}(h) + Φ_{t−1}) · x_t(c),   r^b_t(h) = (r^n_{t−1}(h) + r^b_{t−1}(h)) · x_t(blank)
#   ψ(h) = Σ_t Φ_{t−1} · x_t(c)   — the probability of every transcript that starts with h.
# Here a virtual frame 0 starts the empty prefix (r^b_0(∅) = 1), and both recursions are unrolled with
# cumulative sums (r^n_t(h) = Σ_{τ<t} Φ_τ Π_{s=τ+1..t} x_s(c)), so one extension is a few vector
# operations over the frames rather than a loop over them.

class PrefixState:
    """r^n and r^b of one prefix over frames 0..T (log, float64), and ψ, its log prefix probability."""

    __slots__ = ("n", "b", "psi")

    def __init__(self, n: torch.Tensor, b: torch.Tensor, psi: float):
        self.n, self.b, self.psi = n, b, psi

    @property
    def full(self) -> float:
        """log p(transcript = this prefix, nothing after it)."""
        return float(torch.logaddexp(self.n[-1], self.b[-1]))


def empty_prefix(log_probs: torch.Tensor) -> PrefixState:
    """The state of the empty transcript over one clip's ``log_probs`` (T, C), its frames only."""
    blank = blank_sums(log_probs)
    return PrefixState(torch.full_like(blank, -math.inf), blank, 0.0)


def blank_sums(log_probs: torch.Tensor) -> torch.Tensor:
    """B_t = Σ_{s≤t} log x_s(blank) over frames 0..T (B_0 = 0): one clip's, shared by every extension."""
    return torch.cat([log_probs.new_zeros(1, dtype=torch.float64), log_probs[:, BLANK].double().cumsum(0)])


def extend_prefix(log_probs: torch.Tensor, state: PrefixState, symbol: int, repeats: bool,
                  blank: torch.Tensor | None = None) -> PrefixState:
    """The state of the prefix extended by ``symbol`` (a character's index, not the blank);
    ``repeats``: the prefix ends with the same character; ``blank``: the clip's ``blank_sums``."""
    x = log_probs[:, symbol].double()
    phi = state.b if repeats else torch.logaddexp(state.n, state.b)  # frames 0..T
    s = torch.cat([x.new_zeros(1), x.cumsum(0)])  # S_t = Σ_{s≤t} x_s(c), S_0 = 0
    n = torch.cat([x.new_full((1,), -math.inf), s[1:] + torch.logcumsumexp(phi[:-1] - s[:-1], 0)])
    psi = float(torch.logsumexp(phi[:-1] + x, 0))
    blank = blank_sums(log_probs) if blank is None else blank
    b = torch.cat([x.new_full((1,), -math.inf), blank[1:] + torch.logcumsumexp(n[:-1] - blank[:-1], 0)])
    return PrefixState(n, b, psi)


class PrefixScorer:
    """ψ of character strings over one clip, each prefix's state computed once (strings that share
    a beginning share its states)."""

    def __init__(self, log_probs: torch.Tensor, characters: str = CHARACTERS):
        self.log_probs, self.index = log_probs, {c: i + 1 for i, c in enumerate(characters)}
        self.states = {"": empty_prefix(log_probs)}
        self.blank = self.states[""].b  # the empty prefix's r^b is the clip's blank_sums

    def state(self, text: str) -> PrefixState | None:
        """None when ``text`` holds a character the head cannot spell."""
        if text in self.states:
            return self.states[text]
        if any(c not in self.index for c in text):
            return None
        done = max(i for i in range(len(text)) if text[:i] in self.states)
        state = self.states[text[:done]]
        for i in range(done, len(text)):
            state = extend_prefix(self.log_probs, state, self.index[text[i]], i > 0 and text[i - 1] == text[i],
                                  self.blank)
            self.states[text[:i + 1]] = state
        return state
