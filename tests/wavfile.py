"""Write test recordings with the stdlib ``wave`` module (16-bit PCM)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike


def write_wav(path: Path, samples: ArrayLike, sample_rate: int = 48000) -> Path:
    """Write samples (full scale 1.0; one column per channel) as 16-bit PCM; returns path."""
    x = np.asarray(samples, dtype=np.float64)
    frames = x[:, None] if x.ndim == 1 else x
    ints = np.clip(np.round(frames * 32768), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(ints.tobytes())
    return path
