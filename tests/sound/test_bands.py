"""Third-octave band grid and filter bank."""

import numpy as np
import pytest

from agent.emulators.signals import pink_noise
from agent.sound.bands import (
    NOMINAL_HZ,
    ThirdOctaveBank,
    band_edges_hz,
    exact_centre_hz,
    nominal_hz,
)


def test_base_ten_grid():
    assert nominal_hz(0) == 1000.0 and nominal_hz(-12) == 63.0 and nominal_hz(13) == 20000.0
    lo, hi = band_edges_hz(0)
    assert lo == pytest.approx(891.25, abs=0.01) and hi == pytest.approx(1122.02, abs=0.01)
    # Nominal labels round the exact frequencies (within 3 %).
    exact = exact_centre_hz(np.arange(-20, 14))
    assert np.all(np.abs(exact / np.array(NOMINAL_HZ) - 1) < 0.03)


@pytest.mark.parametrize(("fs", "top"), [(16000, 6300.0), (44100, 16000.0), (48000, 16000.0)])
def test_bank_covers_the_bands_below_nyquist_with_unit_centre_gain(fs, top):
    bank = ThirdOctaveBank(fs)
    assert bank.nominal_hz[0] == 20.0 and bank.nominal_hz[-1] == top
    assert np.all(np.abs(bank.centre_gain_db()) < 0.01)


def test_band_energies_add_up_to_the_broadband_energy_of_pink_noise():
    fs = 48000
    x = pink_noise(0.0, 2.0, fs, low_hz=25.0, seed=1)
    bank = ThirdOctaveBank(fs, low_hz=25.0, high_hz=16000.0)
    energies = bank.process(x)[:, fs // 2 :].mean(axis=1)
    # Adjacent Butterworth bands overlap a little, so the sum sits slightly
    # above the total; pink noise puts about equal energy in every band.
    total = np.mean(x[fs // 2 :] ** 2)
    assert energies.sum() / total == pytest.approx(1.0, abs=0.15)
    band_db = 10 * np.log10(energies)
    assert np.ptp(band_db[2:-2]) < 2.0


def test_bank_refuses_an_empty_range():
    with pytest.raises(ValueError, match="no third-octave band"):
        ThirdOctaveBank(48000, low_hz=30000.0)
