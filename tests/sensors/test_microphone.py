"""Microphone driver: the sound level meter fed by a capture source on its own thread.

Most tests use ``ArraySource``, which hands out a prepared signal as fast as the
meter takes it (so an interval costs no wall time); the WAV and generated
sources run at real-time pace with short intervals where pace is what a test is about,
and on a fake clock where it is not.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from agent.bus.audio import PacedSource, WavSource
from agent.clock import SYSTEM, Clock
from agent.config.profiles import all_profiles
from agent.emulators import registry as emulator_registry
from agent.emulators.microphone import MEMS_OFFSET_DB, steady_tone
from agent.emulators.signals import level_steps, tone
from agent.errors import BusError, DataNotReady, SensorError
from agent.models import Quality
from agent.sensors import registry
from agent.sensors.base import BusKind, SensorDriver
from agent.sensors.microphone import DEFAULT_OFFSET_DB, Microphone, MicrophoneOptions
from agent.sound import offset_from_sensitivity
from tests.clock import FakeClock
from tests.wavfile import write_wav

FS = 48000
OFFSET = 120.0


class ArraySource:
    """An AudioSource over a prepared signal, unpaced: blocks come as fast as they are read.

    ``lose`` maps a block index to the overruns reported just before that block,
    as a capture that dropped audio there; ``fail_at`` makes that block raise.
    """

    def __init__(self, samples: np.ndarray, block: int = 4800, *,
                 lose: dict[int, int] | None = None, fail_at: int | None = None) -> None:
        self.samples = samples.astype(np.float32)
        self.block = block
        self.lose = lose or {}
        self.fail_at = fail_at
        self.overruns = 0
        self.sample_rate = FS
        self.clock: Clock = SYSTEM
        self.starts = 0
        self.stops = 0
        self._index = 0
        self._thread_names: set[str] = set()

    def start(self) -> None:
        self.starts += 1
        self._index = 0

    def read(self, timeout_s: float) -> np.ndarray | None:
        self._thread_names.add(threading.current_thread().name)
        i = self._index
        if i == self.fail_at:
            self.fail_at = None
            raise BusError("capture device vanished")
        start = i * self.block
        if start >= self.samples.size:
            time.sleep(min(timeout_s, 0.01))
            return None
        self.overruns += self.lose.get(i, 0)
        self._index += 1
        return self.samples[start:start + self.block]

    def stop(self) -> None:
        self.stops += 1

    def close(self) -> None:
        self.stop()


def options(**kw: object) -> MicrophoneOptions:
    base: dict[str, object] = {"calibration_offset_db": OFFSET, "interval_s": 1.0,
                               "settle_s": 0.0}
    return MicrophoneOptions(**{**base, **kw})  # type: ignore[arg-type]


def read_when_ready(driver: Microphone, timeout_s: float = 5.0) -> list:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return driver.read()
        except DataNotReady:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def by_name(readings: list) -> dict[str, float]:
    """The first interval's values (an unpaced source may have completed more)."""
    values: dict[str, float] = {}
    for r in readings:
        values.setdefault(r.quantity, r.value)
    return values


# -- registration, profile, options --------------------------------------------------

def test_registered_on_the_audio_bus_with_the_profile_quantities() -> None:
    spec = registry()["microphone"]
    assert spec.bus is BusKind.AUDIO
    assert spec.driver_type is Microphone
    profile = all_profiles()["microphone"]
    assert Microphone.quantities == tuple(q.name for q in profile.quantities)
    assert profile.quantity("laeq").aggregation.value == "energy_mean"
    assert profile.quantity("lafmax").aggregation.value == "max"
    assert profile.quantity("lafmin").aggregation.value == "min"
    assert isinstance(Microphone(ArraySource(np.zeros(1)), options()), SensorDriver)


def test_default_offset_is_the_datasheet_sensitivity_of_minus_26_dbfs() -> None:
    assert abs(DEFAULT_OFFSET_DB - offset_from_sensitivity(-26.0)) < 1e-9
    assert abs(MEMS_OFFSET_DB - DEFAULT_OFFSET_DB) < 1e-9
    assert MicrophoneOptions().calibration_offset_db == pytest.approx(123.0103, abs=1e-4)


@pytest.mark.parametrize("bad", [{"sample_rate": 1000}, {"channel": -1}, {"block_s": 0.0},
                                 {"buffer_s": 0.1}, {"settle_s": -1.0}, {"interval_s": 0.01}])
def test_options_reject_impossible_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MicrophoneOptions(**bad)  # type: ignore[arg-type]


# -- levels through the whole driver -----------------------------------------------

def test_94_db_tone_through_the_driver_reads_94_db() -> None:
    source = ArraySource(tone(1000, 94.0, 3.0, FS, OFFSET))
    driver = Microphone(source, options())
    driver.start()
    try:
        values = by_name(read_when_ready(driver))
    finally:
        driver.stop()
    for name in ("laeq", "lafmax", "lafmin", "la10", "la50", "la90", "lceq", "lzeq"):
        assert values[name] == pytest.approx(94.0, abs=0.1), name


def test_wav_source_at_real_time_pace_through_the_driver(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "tone.wav", tone(1000, 85.0, 1.0, FS, OFFSET))
    driver = Microphone(WavSource(wav, block_s=0.05), options(interval_s=0.5, block_s=0.05))
    driver.start()
    try:
        values = by_name(read_when_ready(driver, 3.0))
    finally:
        driver.stop()
    assert values["laeq"] == pytest.approx(85.0, abs=0.1)
    assert values["lceq"] == pytest.approx(85.0, abs=0.1)


def test_generated_calibrator_tone_at_real_time_pace_reads_its_level() -> None:
    source = steady_tone(1000, 94.0, FS, offset_db=OFFSET, block_s=0.05)
    driver = Microphone(source, options(interval_s=0.5, block_s=0.05))
    driver.start()
    try:
        values = by_name(read_when_ready(driver, 3.0))
    finally:
        driver.stop()
    assert values["laeq"] == pytest.approx(94.0, abs=0.1)


def test_simulated_street_microphone_reads_plausible_street_levels() -> None:
    source = emulator_registry()["microphone"].factory(FS, block_s=0.05)
    source.clock = FakeClock()  # paced in fake time: levels, not pace, are the point here
    driver = Microphone(source, MicrophoneOptions(interval_s=0.5, block_s=0.05,
                                                  settle_s=0.0))
    driver.start()
    try:
        values = by_name(read_when_ready(driver, 3.0))
    finally:
        driver.stop()
    assert 30 < values["la90"] <= values["la50"] <= values["la10"] < 90
    assert values["lafmin"] <= values["laeq"] <= values["lafmax"]


def test_percentiles_follow_the_time_spent_at_each_level() -> None:
    # 0.8 s quiet, then 0.2 s loud: LA90 and LA50 are the quiet level, LA10 near the loud one.
    source = ArraySource(level_steps([(60.0, 0.8), (80.0, 0.2)] * 2, FS, offset_db=OFFSET))
    driver = Microphone(source, options())
    driver.start()
    try:
        values = by_name(read_when_ready(driver))
    finally:
        driver.stop()
    assert values["la90"] == pytest.approx(60.0, abs=0.2)
    assert values["la50"] == pytest.approx(60.0, abs=0.2)
    assert 75.0 < values["la10"] < values["lafmax"] <= 80.0
    assert values["laeq"] == pytest.approx(10 * math.log10(0.8e6 + 0.2e8), abs=0.1)


def test_clipping_flags_the_interval_out_of_range() -> None:
    source = ArraySource(np.clip(2 * tone(1000, 0.0, 2.0, FS), -1, 1))
    driver = Microphone(source, options(calibration_offset_db=100.0))
    driver.start()
    try:
        readings = read_when_ready(driver)
    finally:
        driver.stop()
    assert all(Quality.OUT_OF_RANGE in r.flags for r in readings)


def test_settle_time_is_dropped_after_start() -> None:
    pop = np.concatenate([np.full(FS // 5, 0.9), tone(1000, 70.0, 1.2, FS, OFFSET)])
    driver = Microphone(ArraySource(pop), options(settle_s=0.2))
    driver.start()
    try:
        values = by_name(read_when_ready(driver))
    finally:
        driver.stop()
    assert values["lafmax"] == pytest.approx(70.0, abs=0.1)


# -- read semantics -----------------------------------------------------------------

def test_not_ready_before_the_first_interval_and_never_the_same_interval_twice() -> None:
    source = steady_tone(1000, 80.0, FS, offset_db=OFFSET, block_s=0.05)
    driver = Microphone(source, options(interval_s=0.5, block_s=0.05))
    driver.start()
    try:
        with pytest.raises(DataNotReady):
            driver.read()  # due in 0.5 s, more than the 0.25 s it may wait
        first = read_when_ready(driver, 3.0)
        assert len(first) == 8
        with pytest.raises(DataNotReady):
            driver.read()
    finally:
        driver.stop()


def test_read_waits_briefly_for_an_interval_that_is_about_to_complete() -> None:
    source = steady_tone(1000, 80.0, FS, offset_db=OFFSET, block_s=0.05)
    driver = Microphone(source, options(interval_s=0.5, block_s=0.05))
    driver.start()
    try:
        time.sleep(0.4)
        assert by_name(driver.read())["laeq"] == pytest.approx(80.0, abs=0.1)
    finally:
        driver.stop()


def test_every_completed_interval_is_returned_once_oldest_first() -> None:
    signal = level_steps([(60.0, 1.0), (70.0, 1.0), (80.0, 1.0)], FS, offset_db=OFFSET)
    driver = Microphone(ArraySource(signal), options())
    driver.start()
    try:
        wait_for_intervals(driver, 3)
        readings = driver.read()
        with pytest.raises(DataNotReady):
            driver.read()
    finally:
        driver.stop()
    laeq = [r.value for r in readings if r.quantity == "laeq"]
    assert laeq == pytest.approx([60.0, 70.0, 80.0], abs=0.2)


def test_metering_runs_on_its_own_thread_not_the_callers() -> None:
    source = ArraySource(tone(1000, 70.0, 1.5, FS, OFFSET))
    driver = Microphone(source, options())
    driver.start()
    try:
        read_when_ready(driver)
    finally:
        driver.stop()
    assert source._thread_names == {"sound-meter"}


# -- lost audio, dead streams, recovery ---------------------------------------------

def wait_for_intervals(driver: Microphone, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(driver._done) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_interval_with_lost_blocks_is_withheld_and_counted() -> None:
    # Blocks of 0.1 s: block 3 arrives after 2 lost blocks, inside the only interval. The
    # 0.4 s after it leave the next interval further off than read() waits for one.
    source = ArraySource(tone(1000, 70.0, 1.4, FS, OFFSET), lose={3: 2})
    driver = Microphone(source, options())
    driver.start()
    try:
        with pytest.raises(SensorError, match="2 audio block"):
            read_when_ready(driver)
        assert driver.frames_rejected == 2
        assert driver.intervals_dropped == 1
        with pytest.raises(DataNotReady):
            driver.read()  # the withheld interval is gone, not retried
    finally:
        driver.stop()


def test_whole_intervals_are_still_returned_beside_a_withheld_one() -> None:
    source = ArraySource(tone(1000, 70.0, 2.5, FS, OFFSET), lose={13: 1})
    driver = Microphone(source, options())
    driver.start()
    try:
        wait_for_intervals(driver, 2)
        values = by_name(driver.read())
    finally:
        driver.stop()
    assert values["laeq"] == pytest.approx(70.0, abs=0.1)
    assert driver.frames_rejected == 1
    assert driver.intervals_dropped == 1


def test_injected_overrun_on_the_paced_source_is_counted() -> None:
    source = steady_tone(1000, 80.0, FS, offset_db=OFFSET, block_s=0.05)
    driver = Microphone(source, options(interval_s=0.5, block_s=0.05))
    driver.start()
    try:
        source.inject_overrun(3)
        with pytest.raises(SensorError, match="3 audio block"):
            read_when_ready(driver, 3.0)
        assert source.overruns == 3
        assert driver.frames_rejected == 3
        assert len(read_when_ready(driver, 3.0)) == 8
    finally:
        driver.stop()


def test_a_dead_capture_surfaces_in_read_and_reset_recovers() -> None:
    source = ArraySource(tone(1000, 70.0, 2.0, FS, OFFSET), fail_at=2)
    driver = Microphone(source, options())
    driver.start()
    try:
        with pytest.raises(BusError, match="vanished"):
            read_when_ready(driver)
        with pytest.raises(BusError):
            driver.read()  # sticky until reset
        driver.reset()
        assert source.starts == 2 and source.stops == 1
        assert by_name(read_when_ready(driver))["laeq"] == pytest.approx(70.0, abs=0.1)
    finally:
        driver.stop()


def test_silence_from_the_device_is_a_failure() -> None:
    source = ArraySource(np.zeros(0))
    source.clock = clock = FakeClock()
    driver = Microphone(source, options())
    driver.start()
    try:
        with pytest.raises(DataNotReady):
            driver.read()  # quiet for a moment is no failure yet
        clock.now += 3.5
        with pytest.raises(SensorError, match=r"no audio .* for 3\.5 s"):
            driver.read()
    finally:
        driver.stop()


def test_stop_ends_the_meter_thread_and_the_capture() -> None:
    source = PacedSource(np.zeros, FS, block_s=0.05)
    driver = Microphone(source, options())
    with pytest.raises(SensorError, match="before start"):
        driver.read()
    driver.start()
    driver.stop()
    assert not any(t.name == "sound-meter" for t in threading.enumerate())
    with pytest.raises(BusError):
        source.read(0.0)  # stopped


# -- privacy ------------------------------------------------------------------------

_WATCH = {"on": False, "events": []}


def _audit(event: str, args: tuple) -> None:
    if not _WATCH["on"]:
        return
    if event == "open" and len(args) > 1 and isinstance(args[1], str) and \
            any(c in args[1] for c in "wax+"):
        _WATCH["events"].append((event, str(args[0])))
    elif event.startswith("socket.") and event != "socket.gethostname":
        _WATCH["events"].append((event, ""))


sys.addaudithook(_audit)


def test_metering_a_recording_writes_no_file_and_opens_no_socket(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "speech-like.wav", tone(440, 60.0, 1.0, FS, OFFSET))
    source = WavSource(wav, block_s=0.05, clock=FakeClock())  # paced in fake time
    driver = Microphone(source, options(interval_s=0.5, block_s=0.05))
    _WATCH["events"].clear()
    _WATCH["on"] = True
    try:
        driver.start()
        values = by_name(read_when_ready(driver, 3.0))
        driver.stop()
    finally:
        _WATCH["on"] = False
    assert math.isfinite(values["laeq"])
    assert _WATCH["events"] == []
