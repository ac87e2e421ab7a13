"""The TTS voices of the speech source (engine, the engine's voice, accent, gender): the groups
the speech-fairness analyses compare. No torch: the parameter schema takes its choices from here."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Voice:
    name: str
    engine: str  # "espeak-ng" or "flite"
    engine_voice: str  # the engine's own voice argument
    accent: str
    gender: str
    base_f0: float = 0.0  # flite only: the voice's mean pitch in Hz, measured once with an autocorrelation


# espeak-ng's "+f3"/"+f4" variants are its female voice variants of the same accent.
VOICES: dict[str, Voice] = {v.name: v for v in [
    Voice("espeak-us-m", "espeak-ng", "en-us", "US", "male"),
    Voice("espeak-us-f", "espeak-ng", "en-us+f3", "US", "female"),
    Voice("espeak-gb-m", "espeak-ng", "en-gb", "British", "male"),
    Voice("espeak-gb-f", "espeak-ng", "en-gb+f4", "British", "female"),
    Voice("espeak-scot-m", "espeak-ng", "en-gb-scotland", "Scottish", "male"),
    Voice("espeak-carib-m", "espeak-ng", "en-029", "Caribbean", "male"),
    Voice("flite-slt-f", "flite", "slt", "US", "female", 170.0),
    Voice("flite-rms-m", "flite", "rms", "US", "male", 105.0),
    Voice("flite-awb-m", "flite", "awb", "Scottish", "male", 125.0),
    Voice("flite-kal-m", "flite", "kal16", "US", "male", 95.0),
]}
VOICE_NAMES = tuple(VOICES)


def trained_voices(voices, heldout) -> list[str]:
    """The voices that speak training clips: ``voices`` less the ``heldout`` ones (which speak
    only validation and test clips). Raises ValueError when a held-out voice is not among the voices, or when
    every voice is held out."""
    stray = [v for v in heldout if v not in voices]
    if stray:
        raise ValueError(f"held-out voices {stray} are not among the voices {list(voices)}; hold out some of "
                         f"them, or none")
    seen = [v for v in voices if v not in heldout]
    if not seen:
        raise ValueError("every voice is held out: none is left to speak the training clips")
    return seen


def tts_voices(clips) -> list[str]:
    """The TTS voices of ``VOICES`` that speak ``clips`` (a table with a ``voice`` column: a split's
    speech), sorted; a user's recorded speech has none."""
    return sorted(v for v in set(clips["voice"]) if v in VOICES)
