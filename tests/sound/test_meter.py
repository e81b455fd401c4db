"""The streaming sound level meter: levels, intervals, streaming, calibration."""

import itertools
import math

import numpy as np
import pytest

from agent.emulators.signals import level_steps, pink_noise, tone, tone_burst
from agent.models import Quality
from agent.sound.levels import energy_average
from agent.sound.meter import SoundLevelMeter, calibration_offset, measure

FS = 48000
OFFSET = 100.0  # dB SPL of a full-scale square wave in these tests


def test_sine_of_known_rms_reads_its_level():
    # Brief: within 0.1 dB. It does far better: only the filters' start-up
    # transient in the first interval costs ~0.001 dB.
    x = tone(1000.0, 74.0, 3.0, FS, OFFSET)
    out = measure(x, FS, 1.0, OFFSET)
    assert len(out) == 3
    for r in out:
        assert r.laeq == pytest.approx(74.0, abs=0.005)
        assert r.lceq == pytest.approx(74.0, abs=0.005)
        assert r.lzeq == pytest.approx(74.0, abs=0.005)
        assert r.lafmax == pytest.approx(74.0, abs=0.03)
        assert r.lafmin == pytest.approx(74.0, abs=0.03)
        assert r.clipped_samples == 0


def test_level_step_60_to_80():
    x = level_steps([(60.0, 1.0), (80.0, 1.0)], FS, 1000.0, OFFSET)
    (r,) = measure(x, FS, 2.0, OFFSET)
    # LAeq is the energy mean 77.0329; the filters' response to the two
    # abrupt amplitude changes costs about 0.001 dB.
    assert r.laeq == pytest.approx(energy_average([60.0, 80.0]), abs=0.005)
    assert r.laeq == pytest.approx(77.04, abs=0.01)
    # Fast reaches 80 − 0.0015 dB after 1 s (1 − e^−8); ripple of the squared
    # 1 kHz tone through τ = 0.125 s adds ±0.003 dB.
    assert r.lafmax == pytest.approx(80.0, abs=0.01)
    # The detector is primed on the first 125 ms, which include the A filter's
    # onset (the first ~5 ms read 0.25 dB low): LAFmin lands ~0.02 dB under 60.
    assert r.lafmin == pytest.approx(60.0, abs=0.05)


def test_percentiles_of_a_constructed_level_distribution():
    # 20 s: 40 dB 35 %, 45 dB 20 %, 60 dB 40 %, 80 dB 5 % of the time, in
    # rising order so each rise (fast: <0.5 s) sits at the start of the
    # louder step and never straddles a percentile.
    x = level_steps([(40.0, 7.0), (45.0, 4.0), (60.0, 8.0), (80.0, 1.0)], FS, 1000.0, OFFSET)
    (r,) = measure(x, FS, 20.0, OFFSET)
    assert r.la10 == pytest.approx(60.0, abs=0.05)  # 80 dB holds only 5 %
    assert r.la50 == pytest.approx(45.0, abs=0.05)  # 45 dB spans 45 %..65 % exceeded
    assert r.la90 == pytest.approx(40.0, abs=0.05)
    assert r.lafmax == pytest.approx(80.0, abs=0.05)
    assert r.lafmin == pytest.approx(40.0, abs=0.05)


def _fields(r):
    return np.array(
        [r.start_s, r.duration_s, r.laeq, r.lafmax, r.lafmin, r.la10, r.la50, r.la90, r.lceq,
         r.lzeq, r.clipped_samples, *[db for _, db in r.bands]]
    )  # fmt: skip


def test_streaming_equals_one_shot_for_any_block_sizes():
    fs = 44100
    rng = np.random.default_rng(5)
    x = pink_noise(60.0, 3.3, fs, OFFSET, seed=2) + tone(440.0, 65.0, 3.3, fs, OFFSET)
    x *= np.repeat(rng.uniform(0.3, 1.0, 33), x.size // 33 + 1)[: x.size]  # fluctuate

    def run(cuts):
        meter = SoundLevelMeter(fs, 0.5, OFFSET, z_weighting=True, third_octaves=True)
        out = []
        for a, b in itertools.pairwise(cuts):
            out += meter.feed(x[a:b])
        return out + meter.flush()

    whole = run([0, x.size])
    inner = np.sort(rng.choice(np.arange(1, x.size), 60, replace=False))
    pieces = run([0, 1, 2, 3, 100, *inner.tolist(), x.size])  # tiny blocks before priming too
    assert len(whole) == len(pieces) == 7  # 6 × 0.5 s and a 0.3 s tail
    for a, b in zip(whole, pieces, strict=True):
        np.testing.assert_allclose(_fields(a), _fields(b), rtol=0, atol=1e-9)


def test_intervals_are_exact_in_samples_across_blocks():
    fs = 44100
    meter = SoundLevelMeter(fs, 0.25, OFFSET)
    x = tone(1000.0, 70.0, 3.1, fs, OFFSET)
    out = []
    for i in range(0, x.size, 1000):
        out += meter.feed(x[i : i + 1000])
    assert len(out) == 12
    assert [r.start_s for r in out] == pytest.approx([k * 0.25 for k in range(12)])
    assert all(r.duration_s == pytest.approx(0.25) for r in out)
    (tail,) = meter.flush()
    assert tail.start_s == pytest.approx(3.0) and tail.duration_s == pytest.approx(0.1)
    assert meter.flush() == []


def test_burst_exposure_follows_ten_lg_of_its_duration():
    # IEC 61672-1: the LAE/LAeq response to a burst is 10·lg(Tb/T0).
    steady = measure(tone(4000.0, 70.0, 1.0, FS, OFFSET), FS, 1.0, OFFSET)[0].laeq
    burst = tone_burst(4000.0, 70.0, 0.1, FS, total_s=1.0, start_s=0.4, offset_db=OFFSET)
    assert measure(burst, FS, 1.0, OFFSET)[0].laeq - steady == pytest.approx(-10.0, abs=0.02)


def test_calibration_helper_makes_a_94_db_tone_read_94():
    true_offset = 123.0  # what the microphone chain really has
    recording = tone(1000.0, 94.0, 2.0, FS, true_offset) + 0.002  # and a DC offset
    offset = calibration_offset(recording, FS)
    assert offset == pytest.approx(true_offset, abs=0.01)
    check = measure(tone(1000.0, 94.0, 1.0, FS, true_offset), FS, 1.0, offset)[0]
    assert round(check.laeq, 1) == 94.0 and round(check.lzeq, 1) == 94.0
    # Linearity: 114 dB reads 114.0 with the same offset.
    loud = measure(tone(1000.0, 114.0, 1.0, FS, true_offset), FS, 1.0, offset)[0]
    assert loud.laeq == pytest.approx(114.0, abs=0.01)


def test_calibration_ignores_background_and_tolerates_an_off_nominal_calibrator():
    # Street noise 14 dB under the tone: the band filter keeps all but ~30 dB of
    # it away; what is left (and its random cross-term with the tone) is
    # worth a few hundredths of a dB.
    recording = tone(1010.0, 94.0, 2.0, FS, 120.0) + pink_noise(80.0, 2.0, FS, 120.0, seed=4)
    assert calibration_offset(recording, FS) == pytest.approx(120.0, abs=0.05)
    assert measure(recording, FS, 2.0, 120.0)[0].lzeq > 94.15  # a broadband reading would not


def test_calibration_refuses_noise_or_too_short_recordings():
    with pytest.raises(ValueError, match="no dominant"):
        calibration_offset(pink_noise(94.0, 1.0, FS, 120.0), FS)
    with pytest.raises(ValueError, match="at least"):
        calibration_offset(tone(1000.0, 94.0, 0.2, FS, 120.0), FS)


def test_clipping_is_counted_and_flagged():
    x = np.clip(tone(1000.0, 0.0, 1.0, FS) * 2, -1.0, 1.0)  # a driven-to-clip sine
    (r,) = measure(x, FS, 1.0, OFFSET)
    assert r.clipped_samples > 0
    readings = r.readings()
    assert {rd.quantity for rd in readings} == {
        "laeq", "lafmax", "lafmin", "la10", "la50", "la90", "lceq", "lzeq"
    }  # fmt: skip
    assert all(Quality.OUT_OF_RANGE in rd.flags for rd in readings)


def test_readings_skip_disabled_weightings_and_carry_values():
    meter = SoundLevelMeter(FS, 1.0, OFFSET, c_weighting=False)
    (r,) = meter.feed(tone(1000.0, 70.0, 1.0, FS, OFFSET))
    assert r.lceq is None and r.lzeq is None
    values = {rd.quantity: rd.value for rd in r.readings()}
    assert set(values) == {"laeq", "lafmax", "lafmin", "la10", "la50", "la90"}
    assert values["laeq"] == pytest.approx(70.0, abs=0.01)
    assert all(not rd.flags for rd in r.readings())


def test_silence_reads_the_floor_not_nan():
    (r,) = measure(np.zeros(FS), FS, 1.0, OFFSET)
    assert r.laeq == pytest.approx(OFFSET - 200.0)
    assert not any(math.isnan(v) for v in (r.la10, r.la50, r.la90, r.lafmin))


def test_third_octave_bands_locate_a_tone():
    meter = SoundLevelMeter(FS, 1.0, OFFSET, third_octaves=True)
    (r,) = meter.feed(tone(1000.0, 70.0, 1.0, FS, OFFSET))
    bands = dict(r.bands)
    assert bands[1000.0] == pytest.approx(70.0, abs=0.1)
    assert bands[800.0] < 60.0 and bands[1250.0] < 60.0
    assert bands[100.0] < 20.0
    assert min(bands) == 20.0 and max(bands) == 16000.0  # 20 kHz band is above 0.9·Nyquist


def test_rejects_an_interval_shorter_than_the_tick():
    with pytest.raises(ValueError, match="shorter"):
        SoundLevelMeter(FS, 0.001)


def test_a_long_interval_keeps_its_ticks_not_the_filtered_blocks():
    # A tick slice used to be a view of its whole filtered block, so a 60 s interval held
    # 60 s of float64 samples until it ended: the meter's memory went up and down by
    # tens of MB on a box. What an interval keeps is one value per 10 ms tick.
    meter = SoundLevelMeter(FS, 60.0, OFFSET)
    x = pink_noise(60.0, 2.0, FS, OFFSET, seed=3)
    for i in range(0, x.size, FS // 100):
        assert meter.feed(x[i : i + FS // 100]) == []
    ticks = meter._ticks
    assert all(t.base is None for t in ticks)
    assert sum(t.nbytes for t in ticks) <= 8 * (x.size // (FS // 100) + len(ticks))
