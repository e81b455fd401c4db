"""Frequency weightings A, C and Z of IEC 61672-1, analog and digital.

The analog curves follow IEC 61672-1 Annex E, with the pole frequencies
f1..f4 computed from the Annex E design equations rather than the rounded
20.6/107.7/737.9/12194 Hz, and normalised to exactly 0 dB at 1 kHz.

Digitising with the bilinear transform alone bends the top octave down
(−6.2 dB at 16 kHz when sampling at 48 kHz) because it squeezes the whole
analog axis into 0..Nyquist. Here the design is split in two:

* the low-frequency part (the zeros at 0 Hz and the poles f1, f2, f3, all far
  below Nyquist) goes through the bilinear transform, where warping is tiny;
* the double pole at f4 = 12.2 kHz is mapped exactly (impulse invariance,
  z = e^{sT}) and given a fourth-order numerator fitted by linear least squares
  on the squared magnitude so that the whole chain follows the analog curve up
  to 98 % of Nyquist. The fit is in the squared-magnitude domain, where it is
  linear, and the numerator is recovered by spectral factorisation (minimum
  phase), in the spirit of Vicanek's "Matched Second Order Digital Filters".

The result costs one biquad more than the bilinear design and stays within
about ±0.12 dB of the analog curve from 10 Hz to 20 kHz at 48 kHz (see
``bench/sound_meter.py`` and ``tests/sound/test_weighting.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import signal

from agent.sound.bands import BAND_INDICES, exact_centre_hz


class Weighting(StrEnum):
    """IEC 61672-1 frequency weightings."""

    A = "A"
    C = "C"
    Z = "Z"


# --- IEC 61672-1 Annex E design equations (E.2..E.5) -------------------------
_FR_HZ = 1000.0  # reference frequency fr
_FL_HZ = 10.0**1.5  # low corner fL
_FH_HZ = 10.0**3.9  # high corner fH
_D = math.sqrt(0.5)  # D = sqrt(1/2): the -3 dB points of the C curve
_FA_HZ = 10.0**2.45  # fA, centre of the A-weighting's extra high-pass pair


def _annex_e_poles() -> tuple[float, float, float, float]:
    """Return the exact pole frequencies f1, f2, f3, f4 (Hz) of Annex E."""
    # c = fL^2 fH^2; b = [fr^2 + fL^2 fH^2 / fr^2 − D (fL^2 + fH^2)] / (1 − D)
    c = _FL_HZ**2 * _FH_HZ**2
    b = (_FR_HZ**2 + _FL_HZ**2 * _FH_HZ**2 / _FR_HZ**2 - _D * (_FL_HZ**2 + _FH_HZ**2)) / (1 - _D)
    root = math.sqrt(b * b - 4 * c)
    f1 = math.sqrt((-b - root) / 2)  # f1 = {[−b − sqrt(b² − 4c)] / 2}^½
    f4 = math.sqrt((-b + root) / 2)  # f4 = {[−b + sqrt(b² − 4c)] / 2}^½
    f2 = (3 - math.sqrt(5)) / 2 * _FA_HZ  # f2 = (3 − √5)/2 · fA
    f3 = (3 + math.sqrt(5)) / 2 * _FA_HZ  # f3 = (3 + √5)/2 · fA
    return f1, f2, f3, f4


F1_HZ, F2_HZ, F3_HZ, F4_HZ = _annex_e_poles()
"""Exact pole frequencies: 20.598997, 107.65265, 737.86223, 12194.217 Hz."""


def _raw_db(weighting: Weighting, f: NDArray[np.float64]) -> NDArray[np.float64]:
    """Un-normalised Annex E curves (E.1 for C, E.6 for A) in dB."""
    f2 = f * f
    c = F4_HZ**2 * f2 / ((f2 + F1_HZ**2) * (f2 + F4_HZ**2))  # C: f4² f² / ((f²+f1²)(f²+f4²))
    if weighting is Weighting.C:
        return 20 * np.log10(c)
    # A: the C curve times f² / sqrt((f²+f2²)(f²+f3²))
    return 20 * np.log10(c * f2 / np.sqrt((f2 + F2_HZ**2) * (f2 + F3_HZ**2)))


C1000_DB = float(_raw_db(Weighting.C, np.array([_FR_HZ]))[0])
"""Raw C curve at 1 kHz (−0.062 dB in the standard, rounded)."""
A1000_DB = float(_raw_db(Weighting.A, np.array([_FR_HZ]))[0])
"""Raw A curve at 1 kHz (−2.000 dB in the standard, rounded; −1.999656 exactly)."""


def analog_weighting_db(weighting: Weighting | str, frequency_hz: ArrayLike) -> NDArray[np.float64]:
    """The analog weighting in dB at the given frequencies (0 dB at 1 kHz).

    This is the reference the digital filters are judged against; the
    standard's tables are these values at f = 1000·10^(n/10) Hz, rounded to
    0.1 dB.
    """
    weighting = Weighting(weighting)
    f = np.asarray(frequency_hz, dtype=np.float64)
    if weighting is Weighting.Z:
        return np.zeros_like(f)
    offset = A1000_DB if weighting is Weighting.A else C1000_DB
    with np.errstate(divide="ignore"):
        return _raw_db(weighting, f) - offset


# --- digital design -------------------------------------------------------
_NUMERATOR_ORDER = 4  # taps−1 of the fitted high-frequency numerator
_FIT_LOW_HZ = 100.0  # the fit only needs to hold where f4 matters
_FIT_HIGH_HZ = 22_500.0  # upper edge of the 20 kHz third-octave band (22.4 kHz)
_FIT_NYQUIST_FRACTION = 0.98  # the last 2 % below Nyquist are left free
_FIT_POINTS = 400
_FIT_REWEIGHTS = 8  # Lawson iterations: pull the least-squares fit towards minimax
_Z_DC_BLOCK_HZ = 2.0  # Z keeps a 2 Hz high-pass so a mic's DC offset is not read as sound


def design_sos(weighting: Weighting | str, sample_rate: float) -> NDArray[np.float64]:
    """Second-order sections of the digital weighting filter, 0 dB at 1 kHz.

    Z is flat except for a 2 Hz second-order Butterworth DC block (−0.007 dB at
    10 Hz): MEMS microphones often carry a DC offset that would otherwise
    dominate an unweighted level.
    """
    weighting = Weighting(weighting)
    if sample_rate < 8000:
        raise ValueError(f"sample rate {sample_rate} Hz is too low for a sound level meter")
    if weighting is Weighting.Z:
        return np.asarray(
            signal.butter(2, _Z_DC_BLOCK_HZ, "highpass", fs=sample_rate, output="sos"),
            dtype=np.float64,
        )
    two_pi = 2 * math.pi
    if weighting is Weighting.A:
        zeros, poles = [0.0] * 4, [-two_pi * F1_HZ] * 2 + [-two_pi * F2_HZ, -two_pi * F3_HZ]
    else:
        zeros, poles = [0.0] * 2, [-two_pi * F1_HZ] * 2
    z, p, k = signal.bilinear_zpk(zeros, poles, 1.0, sample_rate)
    low = signal.zpk2sos(z, p, k)
    high = _fit_high_sections(weighting, low, sample_rate)
    sos = np.vstack([low, high])
    gain_1k = abs(signal.sosfreqz(sos, [_FR_HZ], fs=sample_rate)[1][0])
    sos[0, :3] /= gain_1k
    return sos


def _fit_high_sections(
    weighting: Weighting, low: NDArray[np.float64], sample_rate: float
) -> NDArray[np.float64]:
    """Sections holding the f4 double pole, with a numerator fitted to the analog curve."""
    pole = math.exp(-2 * math.pi * F4_HZ / sample_rate)  # impulse invariance: z = e^{sT}
    den = np.array([1.0, -2 * pole, pole * pole])
    top = min(_FIT_HIGH_HZ, _FIT_NYQUIST_FRACTION * sample_rate / 2)
    f = np.geomspace(_FIT_LOW_HZ, top, _FIT_POINTS)
    omega = 2 * math.pi * f / sample_rate
    low_mag2 = np.abs(signal.sosfreqz(low, f, fs=sample_rate)[1]) ** 2
    den_mag2 = np.abs(signal.freqz([1.0], den, f, fs=sample_rate)[1]) ** 2
    # |B(e^jω)|² wanted, up to a gain that the 1 kHz normalisation fixes.
    wanted = 10 ** (analog_weighting_db(weighting, f) / 10) / (low_mag2 * den_mag2)
    # |B|² = c0 + Σ c_k cos(kω) is linear in c; fit relative error.
    basis = np.cos(np.outer(omega, np.arange(_NUMERATOR_ORDER + 1))) / wanted[:, None]
    weight = np.ones_like(f)
    for _ in range(_FIT_REWEIGHTS + 1):
        coef = np.linalg.lstsq(basis * weight[:, None], weight, rcond=None)[0]
        error = np.abs(basis @ coef - 1)
        weight = weight * np.sqrt(error / error.max() + 1e-12)
        weight /= weight.max()
    # Spectral factorisation: the autocorrelation polynomial's roots come in
    # pairs (r, 1/r); the ones inside the unit circle give a minimum-phase B.
    autocorr = np.concatenate([coef[:0:-1] / 2, [coef[0]], coef[1:] / 2])
    roots = np.roots(autocorr)
    inside = roots[np.abs(roots) < 1]
    if len(inside) != _NUMERATOR_ORDER:
        raise ArithmeticError(f"weighting fit has zeros on the unit circle at {sample_rate} Hz")
    num = np.real(np.poly(inside))
    return np.asarray(signal.tf2sos(num, den), dtype=np.float64)


def frequency_response_db(
    sos: NDArray[np.float64], frequency_hz: ArrayLike, sample_rate: float
) -> NDArray[np.float64]:
    """Magnitude response of a digital filter in dB at the given frequencies."""
    f = np.atleast_1d(np.asarray(frequency_hz, dtype=np.float64))
    _, h = signal.sosfreqz(sos, f, fs=sample_rate)
    with np.errstate(divide="ignore"):
        return 20 * np.log10(np.abs(h))


class WeightingFilter:
    """A streaming weighting filter: feed blocks of any size, in order.

    The filter state (``zi``) is carried from one block to the next, so
    feeding a signal in pieces gives the same output as feeding it whole.
    """

    def __init__(self, weighting: Weighting | str, sample_rate: float) -> None:
        self.weighting = Weighting(weighting)
        self.sample_rate = float(sample_rate)
        self.sos = design_sos(self.weighting, self.sample_rate)
        self._zi = np.zeros((self.sos.shape[0], 2))

    def process(self, block: ArrayLike) -> NDArray[np.float64]:
        """Filter one block and return the weighted samples (same length)."""
        x = np.asarray(block, dtype=np.float64)
        y, self._zi = signal.sosfilt(self.sos, x, zi=self._zi)
        return np.asarray(y, dtype=np.float64)

    def reset(self) -> None:
        """Forget the past, as after a gap in the input."""
        self._zi = np.zeros_like(self._zi)


# --- IEC 61672-1 table of weightings and tolerance limits -----------------
@dataclass(frozen=True, slots=True)
class BandSpec:
    """One row of the IEC 61672-1 weighting table with the 2002 tolerance limits.

    Limits are "tolerance limits including maximum expanded uncertainty" of
    IEC 61672-1:2002 (identical in GOST 17187-2010 table 2); −inf means no
    lower limit.
    """

    n: int
    """Band index: exact frequency 1000·10^(n/10) Hz."""
    nominal_hz: float
    a_db: float
    """A-weighting, rounded to 0.1 dB as tabulated."""
    c_db: float
    class1: tuple[float, float]
    """(upper, lower) limit in dB for class 1."""
    class2: tuple[float, float]
    """(upper, lower) limit in dB for class 2."""

    @property
    def exact_hz(self) -> float:
        """Frequency the tabulated values belong to (not the nominal label)."""
        return float(exact_centre_hz(self.n))


_INF = math.inf
# nominal Hz, A dB, C dB, class 1 (+, −), class 2 (+, −)
_TABLE_ROWS: tuple[tuple[float, float, float, float, float, float, float], ...] = (
    (10, -70.4, -14.3, 3.5, -_INF, 5.5, -_INF),
    (12.5, -63.4, -11.2, 3.0, -_INF, 5.5, -_INF),
    (16, -56.7, -8.5, 2.5, -4.5, 5.5, -_INF),
    (20, -50.5, -6.2, 2.5, -2.5, 3.5, -3.5),
    (25, -44.7, -4.4, 2.5, -2.0, 3.5, -3.5),
    (31.5, -39.4, -3.0, 2.0, -2.0, 3.5, -3.5),
    (40, -34.6, -2.0, 1.5, -1.5, 2.5, -2.5),
    (50, -30.2, -1.3, 1.5, -1.5, 2.5, -2.5),
    (63, -26.2, -0.8, 1.5, -1.5, 2.5, -2.5),
    (80, -22.5, -0.5, 1.5, -1.5, 2.5, -2.5),
    (100, -19.1, -0.3, 1.5, -1.5, 2.0, -2.0),
    (125, -16.1, -0.2, 1.5, -1.5, 2.0, -2.0),
    (160, -13.4, -0.1, 1.5, -1.5, 2.0, -2.0),
    (200, -10.9, 0.0, 1.5, -1.5, 2.0, -2.0),
    (250, -8.6, 0.0, 1.4, -1.4, 1.9, -1.9),
    (315, -6.6, 0.0, 1.4, -1.4, 1.9, -1.9),
    (400, -4.8, 0.0, 1.4, -1.4, 1.9, -1.9),
    (500, -3.2, 0.0, 1.4, -1.4, 1.9, -1.9),
    (630, -1.9, 0.0, 1.4, -1.4, 1.9, -1.9),
    (800, -0.8, 0.0, 1.4, -1.4, 1.9, -1.9),
    (1000, 0.0, 0.0, 1.1, -1.1, 1.4, -1.4),
    (1250, 0.6, 0.0, 1.4, -1.4, 1.9, -1.9),
    (1600, 1.0, -0.1, 1.6, -1.6, 2.6, -2.6),
    (2000, 1.2, -0.2, 1.6, -1.6, 2.6, -2.6),
    (2500, 1.3, -0.3, 1.6, -1.6, 3.1, -3.1),
    (3150, 1.2, -0.5, 1.6, -1.6, 3.1, -3.1),
    (4000, 1.0, -0.8, 1.6, -1.6, 3.6, -3.6),
    (5000, 0.5, -1.3, 2.1, -2.1, 4.1, -4.1),
    (6300, -0.1, -2.0, 2.1, -2.6, 5.1, -5.1),
    (8000, -1.1, -3.0, 2.1, -3.1, 5.6, -5.6),
    (10000, -2.5, -4.4, 2.6, -3.6, 5.6, -_INF),
    (12500, -4.3, -6.2, 3.0, -6.0, 6.0, -_INF),
    (16000, -6.6, -8.5, 3.5, -17.0, 6.0, -_INF),
    (20000, -9.3, -11.2, 4.0, -_INF, 6.0, -_INF),
)

STANDARD_TABLE: tuple[BandSpec, ...] = tuple(
    BandSpec(n, float(row[0]), row[1], row[2], (row[3], row[4]), (row[5], row[6]))
    for n, row in zip(BAND_INDICES, _TABLE_ROWS, strict=True)
)
"""IEC 61672-1 A and C weightings (10 Hz … 20 kHz) with class 1/2 limits."""
