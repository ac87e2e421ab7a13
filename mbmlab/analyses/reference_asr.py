"""A real speech recogniser beside ours (notebook 04_evaluate): CMU PocketSphinx 5 with the
English acoustic model, dictionary and 3-gram language model its wheel bundles (nothing is
fetched), at its default search settings — pruning the beams to run faster cost it most of its
accuracy on our clips (WER 0.70 → 0.95 at 4× the speed, measured on 40 test clips).

It takes about 0.7 s a clip on one core here, so 04 gives it a seeded sample of the test clips
(``pocketsphinx_clips``) and scores the fused model on the same clips beside it.
"""
from __future__ import annotations

import numpy as np


def sample(n_clips: int, wanted: int, seed: int) -> list[int]:
    """``wanted`` distinct positions out of ``n_clips`` (all of them when ``wanted`` is 0 or more
    than there are), in increasing order, drawn with ``seed``."""
    if wanted <= 0 or wanted >= n_clips:
        return list(range(n_clips))
    return sorted(np.random.default_rng(seed).choice(n_clips, size=wanted, replace=False).tolist())


def pcm16(samples: np.ndarray) -> bytes:
    """Mono float samples in [-1, 1] as 16-bit little-endian PCM, the decoder's raw input."""
    return (np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0) * 32767).round().astype("<i2").tobytes()


def transcribe(clips) -> list[str]:
    """PocketSphinx's transcript of each clip (torchcodec ``AudioDecoder`` objects, as a
    ``datasets`` audio column holds them), one utterance each; "" when it hears no word."""
    from pocketsphinx import Decoder

    decoders: dict[int, Decoder] = {}
    out = []
    for clip in clips:
        samples = clip.get_all_samples()
        rate = int(samples.sample_rate)
        if rate not in decoders:
            decoders[rate] = Decoder(samprate=rate, loglevel="FATAL")
        decoder = decoders[rate]
        decoder.start_utt()
        decoder.process_raw(pcm16(samples.data.mean(0).numpy()), full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        out.append(hypothesis.hypstr if hypothesis is not None else "")
    return out
