"""Exponential time weighting (Fast, Slow) of IEC 61672-1, streaming.

The analog detector is a one-pole low-pass on the squared weighted pressure:

    L_F(t) = 10·lg[ (1/τ) ∫ p²(ξ) e^{−(t−ξ)/τ} dξ / p0² ],  τ = 0.125 s (F) or 1 s (S).

Digitally this is ``y[n] = y[n−1] + α·(x²[n] − y[n−1])`` with
α = 1 − e^{−1/(fs·τ)}: the pole e^{−1/(fs·τ)} is the analog pole mapped
exactly, so a level decays at exactly 10·lg(e)/τ dB/s (34.74 dB/s for F,
4.34 dB/s for S) and the DC gain is 1 (a steady tone reads its mean square).
The recursion runs in ``scipy.signal.lfilter`` with its state carried across
blocks, never as a Python loop over samples.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import signal

FAST_S = 0.125
"""Time constant of time weighting F (IEC 61672-1)."""
SLOW_S = 1.0
"""Time constant of time weighting S (IEC 61672-1)."""


def smoothing_factor(time_constant_s: float, sample_rate: float) -> float:
    """α of the one-pole detector: 1 − e^{−1/(fs·τ)} (1.6665e−4 for F at 48 kHz)."""
    return 1.0 - math.exp(-1.0 / (sample_rate * time_constant_s))


class TimeWeighting:
    """Streaming exponential averager of a squared signal.

    ``process`` takes squared (weighted) samples and returns the running
    time-weighted mean square for every sample; take 10·lg of it for a level.
    The state starts at zero (a meter switched on in silence) unless
    ``prime`` sets it.
    """

    def __init__(self, time_constant_s: float, sample_rate: float) -> None:
        if time_constant_s <= 0 or sample_rate <= 0:
            raise ValueError("time constant and sample rate must be positive")
        self.time_constant_s = float(time_constant_s)
        self.sample_rate = float(sample_rate)
        alpha = smoothing_factor(self.time_constant_s, self.sample_rate)
        self._b = np.array([alpha])
        self._a = np.array([1.0, alpha - 1.0])
        self._zi = np.zeros(1)

    @property
    def value(self) -> float:
        """The current time-weighted mean square (after the last sample fed)."""
        # lfilter's state for one pole is zi = (1 − α)·y[n], i.e. −a1·y[n].
        return float(self._zi[0] / -self._a[1])

    def prime(self, mean_square: float) -> None:
        """Set the detector as if it had long been listening to ``mean_square``."""
        self._zi = np.array([-self._a[1] * float(mean_square)])

    def process(self, squared: ArrayLike) -> NDArray[np.float64]:
        """Feed squared samples; return the time-weighted mean square per sample."""
        x = np.asarray(squared, dtype=np.float64)
        y, self._zi = signal.lfilter(self._b, self._a, x, zi=self._zi)
        return np.asarray(y, dtype=np.float64)

    def reset(self) -> None:
        """Back to silence."""
        self._zi = np.zeros(1)
