"""Test and simulation signals for the sound level meter (pure numpy).

Every generator returns float64 samples with digital full scale 1.0 and takes
levels in dB with the meter's convention (``agent.sound.levels``):
L = 10·lg(mean(x²)) + offset_db. So ``tone(1000, 94, 1, 48000, offset_db=120)``
is the sine that a meter calibrated with offset 120 dB reads as 94 dB.

``StreetNoise`` is the endless source behind simulated mode: pink-ish
background with passing vehicles, seeded so runs repeat.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray


def _rms(level_db: float, offset_db: float) -> float:
    """RMS (full scale 1.0) of a signal reading ``level_db``: 10^((L − offset)/20)."""
    return 10 ** ((level_db - offset_db) / 20)


def tone(
    frequency_hz: float,
    level_db: float,
    duration_s: float,
    sample_rate: float,
    offset_db: float = 0.0,
    *,
    phase_rad: float = 0.0,
) -> NDArray[np.float64]:
    """A sine whose mean square reads ``level_db`` (peak = √2 · rms)."""
    t = np.arange(round(duration_s * sample_rate)) / sample_rate
    amplitude = math.sqrt(2) * _rms(level_db, offset_db)
    return amplitude * np.sin(2 * math.pi * frequency_hz * t + phase_rad)


def level_steps(
    steps: Sequence[tuple[float, float]],
    sample_rate: float,
    frequency_hz: float = 1000.0,
    offset_db: float = 0.0,
) -> NDArray[np.float64]:
    """A tone whose level jumps: ``steps`` is a list of (level dB, duration s).

    The phase runs on across the steps, so only the amplitude changes. Use it
    for step responses and for constructed level distributions (the time
    spent at each level sets the percentiles).
    """
    lengths = [round(d * sample_rate) for _, d in steps]
    t = np.arange(sum(lengths)) / sample_rate
    amplitude = np.repeat([math.sqrt(2) * _rms(lv, offset_db) for lv, _ in steps], lengths)
    return amplitude * np.sin(2 * math.pi * frequency_hz * t)


def tone_burst(
    frequency_hz: float,
    level_db: float,
    burst_s: float,
    sample_rate: float,
    *,
    total_s: float = 1.0,
    start_s: float = 0.1,
    offset_db: float = 0.0,
) -> NDArray[np.float64]:
    """A burst of whole cycles of a steady ``level_db`` tone, silence around it.

    As in IEC 61672-1 the burst starts and ends at zero crossings and holds an
    integer number of cycles (at least one), so its duration is
    round(burst_s·f)/f, not exactly ``burst_s``.
    """
    cycles = max(1, round(burst_s * frequency_hz))
    burst = tone(frequency_hz, level_db, cycles / frequency_hz, sample_rate, offset_db)
    out = np.zeros(round(total_s * sample_rate))
    first = round(start_s * sample_rate)
    out[first : first + burst.size] = burst[: out.size - first]
    return out


def pink_noise(
    level_db: float,
    duration_s: float,
    sample_rate: float,
    offset_db: float = 0.0,
    *,
    seed: int = 0,
    low_hz: float = 20.0,
) -> NDArray[np.float64]:
    """Pink noise (power ∝ 1/f above ``low_hz``) scaled to read exactly ``level_db`` (Z).

    Made in the frequency domain, so the result is periodic: it loops
    seamlessly, which ``StreetNoise`` relies on.
    """
    n = round(duration_s * sample_rate)
    rng = np.random.default_rng(seed)
    spectrum = rng.normal(size=n // 2 + 1) + 1j * rng.normal(size=n // 2 + 1)
    f = np.fft.rfftfreq(n, 1 / sample_rate)
    spectrum *= np.where(f >= low_hz, 1 / np.sqrt(np.maximum(f, low_hz)), 0.0)
    x = np.fft.irfft(spectrum, n)
    x *= _rms(level_db, offset_db) / math.sqrt(float(np.mean(x * x)))
    return x


class StreetNoise:
    """Endless street-like sound for simulated mode: background plus passing cars.

    Background is looped pink noise at ``background_db``; vehicles arrive at
    random (Poisson, ``vehicles_per_minute``) and each adds a pass-by whose
    level rises and falls as a Gaussian in time (σ = 1.5 s) to a peak drawn
    from a normal distribution around ``vehicle_db`` (σ = 2.5 dB). Levels are
    Z-weighted, in the meter's convention with ``offset_db``.
    """

    _LOOP_S = 10.0
    _PASS_SIGMA_S = 1.5

    def __init__(
        self,
        sample_rate: float = 48000.0,
        offset_db: float = 120.0,
        *,
        background_db: float = 48.0,
        vehicle_db: float = 70.0,
        vehicles_per_minute: float = 6.0,
        seed: int = 1,
    ) -> None:
        self.sample_rate = float(sample_rate)
        self._loop = pink_noise(0.0, self._LOOP_S, sample_rate, 0.0, seed=seed)  # mean square 1
        self._rng = np.random.default_rng(seed + 1)
        self._background_ms = 10 ** ((background_db - offset_db) / 10)
        self._vehicle_ms = 10 ** ((vehicle_db - offset_db) / 10)
        self._rate_per_s = vehicles_per_minute / 60
        self._pos = 0  # samples produced so far
        self._passes: list[tuple[float, float]] = []  # (centre time s, peak mean square)
        self._next_arrival_s = self._draw_gap()

    def _draw_gap(self) -> float:
        return float(self._rng.exponential(1 / self._rate_per_s)) if self._rate_per_s else math.inf

    def read(self, frames: int) -> NDArray[np.float64]:
        """The next ``frames`` samples."""
        t = (self._pos + np.arange(frames)) / self.sample_rate
        end_s = float(t[-1]) if frames else 0.0
        while self._next_arrival_s <= end_s + 4 * self._PASS_SIGMA_S:
            peak_db = float(self._rng.normal(0.0, 2.5))
            centre = self._next_arrival_s + 3 * self._PASS_SIGMA_S
            self._passes.append((centre, self._vehicle_ms * 10 ** (peak_db / 10)))
            self._next_arrival_s += self._draw_gap()
        envelope = np.full(frames, self._background_ms)
        for centre, peak_ms in self._passes:
            envelope += peak_ms * np.exp(-0.5 * ((t - centre) / self._PASS_SIGMA_S) ** 2)
        horizon = float(t[0]) if frames else 0.0
        self._passes = [p for p in self._passes if p[0] > horizon - 5 * self._PASS_SIGMA_S]
        idx = (self._pos + np.arange(frames)) % self._loop.size
        self._pos += frames
        return np.sqrt(envelope) * self._loop[idx]
