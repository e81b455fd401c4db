"""Third-octave bands: the base-10 band grid and an optional streaming filter bank.

Band n has the exact mid-band frequency fm = 1000·10^(n/10) Hz and edges
fm·10^(±1/20) (IEC 61260-1, base-10 system); n = −20 … 13 covers the nominal
10 Hz … 20 kHz bands used by IEC 61672-1's weighting tables.

The filter bank is an option of the meter, off by default: each band is a
sixth-order Butterworth band-pass (three biquads), so 30 bands cost about
25 times the A-weighting filter. That is the plain way to get band levels; a
multirate bank would be cheaper on a Pi and can replace this class unchanged
behind ``process``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import signal

BAND_INDICES = tuple(range(-20, 14))
"""n of the IEC 61672-1 table bands, 10 Hz (n = −20) to 20 kHz (n = 13)."""

NOMINAL_HZ = (
    10.0, 12.5, 16.0, 20.0, 25.0, 31.5, 40.0, 50.0, 63.0, 80.0,
    100.0, 125.0, 160.0, 200.0, 250.0, 315.0, 400.0, 500.0, 630.0, 800.0,
    1000.0, 1250.0, 1600.0, 2000.0, 2500.0, 3150.0, 4000.0, 5000.0, 6300.0, 8000.0,
    10000.0, 12500.0, 16000.0, 20000.0,
)  # fmt: skip
"""Nominal labels of the bands in ``BAND_INDICES`` (IEC 61260-1 Annex E)."""

_BAND_ORDER = 3  # Butterworth prototype order; the band-pass is twice this
_MAX_EDGE_FRACTION = 0.9  # drop bands whose upper edge passes 90 % of Nyquist


def exact_centre_hz(n: int | ArrayLike) -> NDArray[np.float64]:
    """Exact base-10 mid-band frequency of band n: 1000·10^(n/10) Hz."""
    return np.asarray(1000.0 * 10.0 ** (np.asarray(n, dtype=np.float64) / 10), dtype=np.float64)


def nominal_hz(n: int) -> float:
    """Nominal label of band n (e.g. n = −12 → 63 Hz)."""
    return NOMINAL_HZ[BAND_INDICES.index(n)]


def band_edges_hz(n: int) -> tuple[float, float]:
    """Lower and upper edge of band n: fm·10^(∓1/20)."""
    fm = float(exact_centre_hz(n))
    return fm * 10 ** (-1 / 20), fm * 10 ** (1 / 20)


class ThirdOctaveBank:
    """Streaming third-octave filter bank; ``process`` returns squared band signals.

    Bands from ``low_hz`` up to the last band whose upper edge stays below
    90 % of Nyquist (16 kHz at 48 kHz sampling). Every band filter keeps its
    own state, so blocks of any size give the same result.
    """

    def __init__(self, sample_rate: float, low_hz: float = 20.0, high_hz: float = 20000.0) -> None:
        self.sample_rate = float(sample_rate)
        nyquist = self.sample_rate / 2
        chosen = [
            n
            for n in BAND_INDICES
            if low_hz * 0.99 <= nominal_hz(n) <= high_hz * 1.01
            and band_edges_hz(n)[1] < _MAX_EDGE_FRACTION * nyquist
        ]
        if not chosen:
            raise ValueError(f"no third-octave band fits between {low_hz} and {high_hz} Hz")
        self.indices = tuple(chosen)
        self.nominal_hz = tuple(nominal_hz(n) for n in chosen)
        self._sos = [
            np.asarray(
                signal.butter(
                    _BAND_ORDER, band_edges_hz(n), "bandpass", fs=self.sample_rate, output="sos"
                ),
                dtype=np.float64,
            )
            for n in chosen
        ]
        self._zi = [np.zeros((s.shape[0], 2)) for s in self._sos]

    def process(self, block: ArrayLike) -> NDArray[np.float64]:
        """Filter one block; return the squared output, shape (bands, samples)."""
        x = np.asarray(block, dtype=np.float64)
        out = np.empty((len(self._sos), x.size))
        for i, sos in enumerate(self._sos):
            out[i], self._zi[i] = signal.sosfilt(sos, x, zi=self._zi[i])
        np.square(out, out=out)
        return out

    def centre_gain_db(self) -> NDArray[np.float64]:
        """Each band's gain at its exact mid-band frequency (≈ 0 dB; for tests)."""
        gains = [
            abs(signal.sosfreqz(sos, [float(exact_centre_hz(n))], fs=self.sample_rate)[1][0])
            for sos, n in zip(self._sos, self.indices, strict=True)
        ]
        return np.asarray(20 * np.log10(gains), dtype=np.float64)
