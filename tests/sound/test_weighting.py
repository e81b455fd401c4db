"""A, C and Z weighting: the analog definition, the digital filters, the class 1 limits."""

import itertools
import math

import numpy as np
import pytest

from agent.emulators.signals import tone
from agent.sound.bands import exact_centre_hz
from agent.sound.weighting import (
    A1000_DB,
    C1000_DB,
    F1_HZ,
    F2_HZ,
    F3_HZ,
    F4_HZ,
    STANDARD_TABLE,
    Weighting,
    WeightingFilter,
    analog_weighting_db,
    design_sos,
    frequency_response_db,
)


def test_annex_e_constants_match_reference_values():
    # sensor-protocols.md §11: f1 = 20.598997, f2 = 107.65265, f3 = 737.86223, f4 = 12194.217
    assert abs(F1_HZ - 20.598997) < 1e-6
    assert abs(F2_HZ - 107.65265) < 1e-5
    assert abs(F3_HZ - 737.86223) < 1e-5
    assert abs(F4_HZ - 12194.217) < 1e-3
    assert abs(A1000_DB - (-1.999656)) < 1e-6
    assert abs(C1000_DB - (-0.062)) < 5e-4  # the standard's rounded C1000


@pytest.mark.parametrize("weighting", [Weighting.A, Weighting.C])
def test_analog_formula_at_exact_band_frequencies_rounds_to_the_table(weighting):
    # The tables are the formula at 1000·10^(n/10) Hz rounded to 0.1 dB.
    for row in STANDARD_TABLE:
        table = row.a_db if weighting is Weighting.A else row.c_db
        value = float(analog_weighting_db(weighting, row.exact_hz))
        assert round(value, 1) == pytest.approx(table, abs=1e-9), row.nominal_hz


def test_analog_a_is_zero_at_1khz_and_z_is_flat():
    assert analog_weighting_db("A", 1000.0) == pytest.approx(0.0, abs=1e-12)
    assert analog_weighting_db("C", 1000.0) == pytest.approx(0.0, abs=1e-12)
    assert np.all(analog_weighting_db("Z", [10.0, 1e3, 2e4]) == 0.0)
    # The table's 12.5 Hz value belongs to 12.589 Hz, not to the label.
    assert analog_weighting_db("A", 12.5) == pytest.approx(-63.58, abs=0.01)


# Worst |digital − analog| from 10 Hz to min(20 kHz band edge, 98 % of Nyquist).
@pytest.mark.parametrize(
    ("sample_rate", "tolerance_db"),
    [(48000, 0.13), (44100, 0.27), (96000, 0.01), (32000, 0.25), (16000, 0.12)],
)
@pytest.mark.parametrize("weighting", [Weighting.A, Weighting.C])
def test_digital_response_follows_the_analog_curve(weighting, sample_rate, tolerance_db):
    sos = design_sos(weighting, sample_rate)
    f = np.geomspace(10.0, min(22400.0, 0.98 * sample_rate / 2), 3000)
    error = frequency_response_db(sos, f, sample_rate) - analog_weighting_db(weighting, f)
    assert np.max(np.abs(error)) < tolerance_db
    assert frequency_response_db(sos, 1000.0, sample_rate)[0] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("sample_rate", [44100, 48000, 96000])
@pytest.mark.parametrize("weighting", [Weighting.A, Weighting.C])
def test_design_is_within_class_1_in_every_band(weighting, sample_rate):
    sos = design_sos(weighting, sample_rate)
    for row in STANDARD_TABLE:
        if row.exact_hz >= sample_rate / 2:
            continue
        table = row.a_db if weighting is Weighting.A else row.c_db
        deviation = frequency_response_db(sos, row.exact_hz, sample_rate)[0] - table
        upper, lower = row.class1
        assert lower <= deviation <= upper, (row.nominal_hz, deviation)
        # Far tighter than class 1: within 0.3 dB of the table at every band.
        assert abs(deviation) < 0.3, (row.nominal_hz, deviation)


@pytest.mark.parametrize("weighting", [Weighting.A, Weighting.C])
def test_third_octave_tones_through_the_streaming_filter(weighting):
    """Real tones, filtered in blocks: the measured gain per band vs the table."""
    fs = 48000
    for row in STANDARD_TABLE:
        f = row.exact_hz
        cycles = math.ceil(f * 0.5)  # measure over whole cycles, ≥ 0.5 s
        settle = fs // 2  # the 10 Hz band needs its filter transient to die out
        x = tone(f, 0.0, (settle + round(cycles / f * fs)) / fs, fs)
        flt = WeightingFilter(weighting, fs)
        y = np.concatenate([flt.process(x[i : i + 4096]) for i in range(0, x.size, 4096)])
        window = slice(settle, settle + round(cycles / f * fs))
        gain_db = 10 * math.log10(np.mean(y[window] ** 2) / np.mean(x[window] ** 2))
        table = row.a_db if weighting is Weighting.A else row.c_db
        upper, lower = row.class1
        assert lower <= gain_db - table <= upper, (row.nominal_hz, gain_db, table)
        analog = float(analog_weighting_db(weighting, f))
        assert gain_db == pytest.approx(analog, abs=0.15), row.nominal_hz


def test_z_blocks_dc_but_is_flat_in_band():
    fs = 48000
    sos = design_sos(Weighting.Z, fs)
    response = frequency_response_db(sos, [10.0, 20.0, 1000.0, 20000.0], fs)
    assert np.all(np.abs(response) < 0.01)
    flt = WeightingFilter("Z", fs)
    y = flt.process(np.full(fs * 3, 0.25))  # a DC offset, as MEMS mics have
    assert abs(y[-fs:]).max() < 1e-3


def test_streaming_filter_equals_one_shot_and_reset_forgets():
    fs = 48000
    x = np.random.default_rng(7).normal(size=fs // 2)
    whole = WeightingFilter("A", fs).process(x)
    flt = WeightingFilter("A", fs)
    cuts = [0, 1, 17, 1000, 1001, 9000, x.size]
    parts = [flt.process(x[a:b]) for a, b in itertools.pairwise(cuts)]
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=0, atol=1e-12)
    flt.reset()
    np.testing.assert_allclose(flt.process(x[:100]), whole[:100], rtol=0, atol=1e-15)


def test_rejects_a_sample_rate_too_low_for_audio():
    with pytest.raises(ValueError, match="too low"):
        design_sos("A", 4000)


def test_band_frequencies_are_base_ten():
    assert float(exact_centre_hz(-9)) == pytest.approx(125.89, abs=0.01)
    assert STANDARD_TABLE[0].nominal_hz == 10.0 and STANDARD_TABLE[-1].nominal_hz == 20000.0
    assert STANDARD_TABLE[20].exact_hz == 1000.0
