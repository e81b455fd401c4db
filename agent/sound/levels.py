"""Level arithmetic: the dBFS↔dB SPL convention, energy averages, percentiles.

Convention used everywhere in ``agent.sound``
----------------------------------------------
Samples are floats with digital full scale = 1.0. A block's level is

    L = 10·lg(mean(x²)) + offset_db

so ``offset_db`` is the sound pressure level (re 20 µPa) that a signal of
mean square 1.0 (a full-scale square wave) would have. A full-scale *sine*
has mean square ½ and reads ``offset_db − 3.01 dB``. Microphone datasheets
quote sensitivity as the dBFS reading of a 94 dB SPL, 1 kHz sine where a
full-scale sine is 0 dBFS (AES17); ``offset_from_sensitivity`` converts.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

REFERENCE_PRESSURE_PA = 20e-6
"""p0 of sound pressure level in air."""
SINE_MEAN_SQUARE_DB = 10 * math.log10(0.5)
"""Level of a full-scale sine relative to a full-scale square wave: −3.0103 dB."""
FLOOR_MEAN_SQUARE = 1e-20
"""Mean squares below this (−200 dB re full scale) are clamped, so digital
silence reads ``offset_db − 200`` instead of −inf (which JSON cannot carry)."""


def level_db(mean_square: ArrayLike, offset_db: float = 0.0) -> NDArray[np.float64]:
    """10·lg(mean square) + offset, clamped at the floor; works on arrays."""
    ms = np.maximum(np.asarray(mean_square, dtype=np.float64), FLOOR_MEAN_SQUARE)
    return np.asarray(10 * np.log10(ms) + offset_db, dtype=np.float64)


def mean_square_for_level(level: float, offset_db: float = 0.0) -> float:
    """Inverse of ``level_db``: the mean square that reads ``level``."""
    return float(10 ** ((level - offset_db) / 10))


def sine_amplitude_for_level(level: float, offset_db: float = 0.0) -> float:
    """Peak amplitude (full scale 1.0) of a sine that reads ``level``."""
    return math.sqrt(2 * mean_square_for_level(level, offset_db))


def offset_from_sensitivity(sensitivity_dbfs: float, reference_db: float = 94.0) -> float:
    """Calibration offset from a microphone's datasheet sensitivity.

    ``sensitivity_dbfs`` is the reading of a ``reference_db`` SPL 1 kHz sine
    with a full-scale sine as 0 dBFS (e.g. −26 dBFS for an ICS-43434). In this
    module's convention that sine has mean square ½·10^(S/10), hence
    offset = reference − S − 10·lg(½) = reference − S + 3.01 dB.
    """
    return reference_db - sensitivity_dbfs - SINE_MEAN_SQUARE_DB


def energy_average(levels_db: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Energy (power) mean of levels: 10·lg(Σ wᵢ·10^(Lᵢ/10) / Σ wᵢ).

    With durations as weights this combines per-interval LAeq values into the
    LAeq of the whole period; (94, 84) → 91.4036 dB.
    """
    levels = np.asarray(levels_db, dtype=np.float64)
    w = np.ones_like(levels) if weights is None else np.asarray(weights, dtype=np.float64)
    if levels.size == 0 or levels.shape != w.shape or w.sum() <= 0:
        raise ValueError("need at least one level and matching positive weights")
    top = levels.max()  # factor out the loudest to keep 10^(L/10) in range
    return float(top + 10 * math.log10(np.sum(w * 10 ** ((levels - top) / 10)) / w.sum()))


def exceeded_level(samples_db: ArrayLike, percent: float) -> float:
    """L_N: the level exceeded during ``percent`` % of the time.

    Rule: the (100 − N)th percentile of the equally spaced level samples with
    linear interpolation between order statistics (numpy's default "linear"
    method). For 40, 41, …, 59 dB this gives L10 = 57.1, L50 = 49.5, L90 = 41.9.
    """
    samples = np.asarray(samples_db, dtype=np.float64)
    if samples.size == 0:
        return math.nan
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be within 0..100, got {percent}")
    return float(np.percentile(samples, 100.0 - percent))


def sound_exposure_level(leq_db: float, duration_s: float) -> float:
    """L_E (SEL) of a period: Leq + 10·lg(T / 1 s)."""
    return leq_db + 10 * math.log10(duration_s)
