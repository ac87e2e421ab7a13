"""Small files for data tests: images and WAVs made here, so no test needs a download."""
import io
import wave

import numpy as np
from PIL import Image


def png(colour=(200, 30, 30), size=(32, 32), mode="RGB", fmt="PNG") -> bytes:
    im = Image.new("RGB", size, (255, 255, 255))
    im.paste(colour, (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    buffer = io.BytesIO()
    (im.convert(mode) if mode != "RGB" else im).save(buffer, format=fmt)
    return buffer.getvalue()


def wav(seconds=1.0, rate=16_000, channels=1, amplitude=0.3, freq=440.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    signal = amplitude * np.sin(2 * np.pi * freq * t)
    frames = np.repeat(signal[:, None], channels, axis=1)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((frames * 32767).astype("<i2").tobytes())
    return buffer.getvalue()
