"""The test/simulation signal generators (agent.emulators.signals)."""

import math

import numpy as np
import pytest

from agent.emulators.signals import StreetNoise, level_steps, pink_noise, tone, tone_burst
from agent.sound.meter import measure


def _level(x, offset):
    return 10 * math.log10(float(np.mean(x * x))) + offset


def test_tone_reads_its_level():
    x = tone(1000.0, 94.0, 1.0, 48000, offset_db=120.0)
    assert x.size == 48000
    assert _level(x, 120.0) == pytest.approx(94.0, abs=1e-9)
    assert np.max(np.abs(x)) == pytest.approx(math.sqrt(2) * 10 ** (-26 / 20), rel=1e-4)


def test_level_steps_keep_phase_and_durations():
    x = level_steps([(60.0, 0.5), (80.0, 0.25)], 48000, 1000.0, 100.0)
    assert x.size == 36000
    assert _level(x[:24000], 100.0) == pytest.approx(60.0, abs=1e-6)
    assert _level(x[24000:], 100.0) == pytest.approx(80.0, abs=1e-6)


def test_tone_burst_holds_whole_cycles_between_silences():
    x = tone_burst(4000.0, 0.0, 0.00025, 48000, total_s=0.2, start_s=0.1)
    nonzero = np.flatnonzero(x)
    assert nonzero[0] >= 4800 and nonzero[-1] < 4800 + 12  # one 4 kHz cycle = 12 samples
    longer = tone_burst(4000.0, 0.0, 0.1, 48000, total_s=0.3, start_s=0.1)
    assert np.count_nonzero(longer) == pytest.approx(4800, abs=20)


def test_pink_noise_level_and_slope():
    fs = 48000
    x = pink_noise(60.0, 4.0, fs, offset_db=100.0, seed=3)
    assert _level(x, 100.0) == pytest.approx(60.0, abs=1e-9)
    assert np.array_equal(x, pink_noise(60.0, 4.0, fs, offset_db=100.0, seed=3))
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / fs)
    octaves = [spectrum[(f >= lo) & (f < 2 * lo)].sum() for lo in (125, 250, 500, 1000, 2000, 4000)]
    spread_db = 10 * math.log10(max(octaves) / min(octaves))
    assert spread_db < 1.0  # equal energy per octave: pink


def test_street_noise_is_seeded_block_independent_and_plausible():
    a = StreetNoise(seed=9)
    b = StreetNoise(seed=9)
    whole = a.read(48000 * 6)
    parts = np.concatenate([b.read(n) for n in (1, 4799, 48000, 100000, 48000 * 6 - 152800)])
    np.testing.assert_allclose(parts, whole, rtol=1e-6, atol=1e-12)
    source = StreetNoise(background_db=45.0, vehicle_db=72.0, vehicles_per_minute=6.0, seed=2)
    x = np.concatenate([source.read(48000) for _ in range(60)])
    levels = measure(x, 48000, 10.0, 120.0)
    assert len(levels) == 6
    # LA90 finds the background; A-weighted pink noise reads ~3 dB under its Z level.
    assert 40.0 < min(r.la90 for r in levels) < 45.0
    assert max(r.lafmax for r in levels) > 62.0  # vehicles pass
    assert StreetNoise(vehicles_per_minute=0.0).read(0).size == 0
