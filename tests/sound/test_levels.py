"""Level arithmetic: energy means, percentiles, the dBFS ↔ dB SPL convention."""

import math

import numpy as np
import pytest

from agent.sound.levels import (
    energy_average,
    exceeded_level,
    level_db,
    mean_square_for_level,
    offset_from_sensitivity,
    sine_amplitude_for_level,
    sound_exposure_level,
)


def test_energy_averages_from_the_reference_vectors():
    # sensor-protocols.md §11
    assert energy_average([94.0, 84.0]) == pytest.approx(91.4036, abs=5e-5)
    assert energy_average([50.0, 60.0, 70.0]) == pytest.approx(65.6820, abs=5e-5)
    assert energy_average([45.5, 62.75]) == pytest.approx(59.8207, abs=5e-5)
    # 1 s at 60 dB then 1 s at 80 dB
    assert energy_average([60.0, 80.0]) == pytest.approx(77.0329, abs=5e-5)
    # Durations as weights: 3 s at 70 dB and 1 s at 80 dB.
    assert energy_average([70.0, 80.0], [3.0, 1.0]) == pytest.approx(
        10 * math.log10((3 * 1e7 + 1e8) / 4)
    )
    # Huge levels do not overflow.
    assert energy_average([400.0, 400.0]) == pytest.approx(400.0)


def test_energy_average_rejects_empty_or_mismatched_input():
    with pytest.raises(ValueError):
        energy_average([])
    with pytest.raises(ValueError):
        energy_average([60.0], [1.0, 2.0])


def test_percentiles_of_twenty_one_per_second_samples():
    # 40, 41, …, 59 dB; numpy linear (100 − N)th percentile (sensor-protocols.md §11)
    samples = np.arange(40.0, 60.0)
    assert exceeded_level(samples, 10) == pytest.approx(57.10)
    assert exceeded_level(samples, 50) == pytest.approx(49.50)
    assert exceeded_level(samples, 90) == pytest.approx(41.90)
    # Order does not matter.
    assert exceeded_level(samples[::-1], 10) == pytest.approx(57.10)
    assert math.isnan(exceeded_level([], 50))
    with pytest.raises(ValueError):
        exceeded_level(samples, 120)


def test_level_convention_full_scale_sine_reads_offset_minus_3_01():
    t = np.arange(48000) / 48000
    full_scale_sine = np.sin(2 * math.pi * 1000 * t)
    assert float(level_db(np.mean(full_scale_sine**2), 120.0)) == pytest.approx(116.9897, abs=1e-4)
    assert float(level_db(1.0, 120.0)) == 120.0
    assert float(level_db(0.0, 120.0)) == pytest.approx(-80.0)  # clamped: −200 dB re full scale
    assert mean_square_for_level(94.0, 120.0) == pytest.approx(10**-2.6)
    assert sine_amplitude_for_level(120.0 - 3.0103, 120.0) == pytest.approx(1.0, abs=1e-5)


def test_offset_from_datasheet_sensitivity():
    # A −26 dBFS (full-scale sine = 0 dBFS) mic: 94 dB SPL gives a sine of
    # peak 10^(−26/20); with the returned offset it reads 94 dB.
    offset = offset_from_sensitivity(-26.0)
    assert offset == pytest.approx(123.0103, abs=1e-4)
    peak = 10 ** (-26 / 20)
    assert float(level_db(peak**2 / 2, offset)) == pytest.approx(94.0, abs=1e-9)


def test_sound_exposure_level():
    assert sound_exposure_level(60.0, 1.0) == 60.0
    assert sound_exposure_level(60.0, 100.0) == pytest.approx(80.0)
