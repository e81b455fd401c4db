"""DNMS: reference frames, float/word decoding, and the driver against the emulated Teensy.

A fake clock drives the emulator and the driver's bus (its waits and its interval clock), so the
1 s reset wait, 5 ms polls and 125 ms audio blocks are honoured exactly but take no time.
"""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.bus.i2c import I2CDevice
from agent.config.profiles import all_profiles
from agent.emulators import registry as emulator_registry
from agent.emulators.dnms import ADDRESS, DnmsDevice, float_frame, version_frame
from agent.emulators.i2c_bus import EmulatedI2CBus
from agent.errors import CrcError, DataNotReady, FrameError, NackError, SensorError
from agent.sensors import registry
from agent.sensors._sensirion import encode_words
from agent.sensors.base import BusKind, Identifiable, SensorDriver
from agent.sensors.dnms import (
    Dnms,
    DnmsOptions,
    is_filler,
    parse_data_ready,
    parse_levels,
    parse_version,
)
from tests.clock import FakeClock
from tests.sensors.rigs import crc_error_of, flipped, on_bus, written

VERSION_251 = bytes.fromhex(
    "44 4E A9 4D 53 65 20 56 85 65 72 39 73 69 A4 6F 6E E9 20 32 FA 2E 35 00 2E 31 C4")
LEQ_FRAME = bytes.fromhex("42 36 B2 00 00 81 42 19 1A 00 00 81 42 7B C3 00 00 81")


def rig(clock: FakeClock, options: DnmsOptions | None = None, **device_kwargs: object):
    device = DnmsDevice(clock=clock, **device_kwargs)  # type: ignore[arg-type]
    bus, i2c = on_bus(device, ADDRESS, clock)
    return bus, device, Dnms(i2c, options or DnmsOptions())


def f32(value: float) -> float:
    return struct.unpack(">f", struct.pack(">f", value))[0]


# --- reference frames (§8, CRC-checked) --------------------------------------------------

def test_reference_frames_decode() -> None:
    assert parse_version(VERSION_251) == "DNMS Version 2.5.1"
    assert version_frame("DNMS Version 2.5.1")[:27] == VERSION_251
    assert parse_data_ready(bytes.fromhex("00 01 B0"))
    assert not parse_data_ready(bytes.fromhex("00 00 81"))
    assert parse_levels(LEQ_FRAME) == (45.5, 38.25, 62.75)
    assert float_frame(45.5, 38.25, 62.75) == LEQ_FRAME


def test_bad_frames_raise_with_evidence() -> None:
    error = crc_error_of(parse_levels, flipped(LEQ_FRAME, 5))
    assert (error.expected, error.received) == (0x81, 0x80)
    with pytest.raises(FrameError):
        parse_levels(LEQ_FRAME[:15])
    with pytest.raises(FrameError):
        parse_version(VERSION_251[:24])
    nan = float_frame(math.nan, 1.0, 2.0)
    with pytest.raises(SensorError, match="non-finite"):
        parse_levels(nan)
    assert is_filler(b"\xff" * 18) and is_filler(b"\x00" * 18)
    assert not is_filler(LEQ_FRAME)


@given(st.floats(-200, 200, width=32), st.floats(-200, 200, width=32),
       st.floats(-200, 200, width=32))
def test_float_words_round_trip(leq: float, low: float, high: float) -> None:
    assert parse_levels(float_frame(leq, low, high)) == (leq, low, high)


@given(st.lists(st.integers(0, 0xFFFF), min_size=6, max_size=6))
def test_any_finite_word_pattern_decodes_as_big_endian_floats(words: list[int]) -> None:
    packed = b"".join(w.to_bytes(2, "big") for w in words)
    expected = struct.unpack(">fff", packed)
    if all(math.isfinite(v) for v in expected):
        assert parse_levels(encode_words(words)) == expected
    else:
        with pytest.raises(SensorError):
            parse_levels(encode_words(words))


# --- registration and profile ------------------------------------------------------------

def test_registered_and_matches_profile() -> None:
    spec = registry()["dnms"]
    assert (spec.bus, spec.driver_type, spec.options_type) == (BusKind.I2C, Dnms, DnmsOptions)
    profile = all_profiles()["dnms"]
    assert tuple(q.name for q in profile.quantities) == Dnms.quantities
    assert (profile.address, profile.sensor_community_pin) == (ADDRESS, 15)
    assert [q.sensor_community for q in profile.quantities][:3] == [
        "noise_LAeq", "noise_LA_min", "noise_LA_max"]
    assert {q.unit for q in profile.quantities} == {"dB"}
    assert isinstance(emulator_registry()["dnms"].factory(), DnmsDevice)
    driver = Dnms(I2CDevice(EmulatedI2CBus(), ADDRESS), DnmsOptions())
    assert isinstance(driver, SensorDriver) and isinstance(driver, Identifiable)
    with pytest.raises(ValueError):
        DnmsOptions(ready_timeout_s=0)


# --- the driver against the emulator -----------------------------------------------------

def test_start_and_read_speak_the_airrohr_sequence(clock: FakeClock) -> None:
    _, device, driver = rig(clock, level_db=55.25)
    driver.start()
    assert written(device) == ["00 01", "00 02", "00 03"]  # reset, version, open interval
    assert driver.identify() == {"firmware": "DNMS Version 2.5.1"}
    clock.now += 60.0
    device.log.clear()
    readings = driver.read()
    assert [(r.quantity, r.value) for r in readings] == [
        ("laeq", f32(55.25)), ("lamin", 55.25), ("lamax", 55.25)]
    sent = written(device)
    assert sent[0] == "00 03" and sent[-1] == "00 05"
    assert set(sent[1:-1]) == {"00 04"}  # polled data-ready until latched
    assert driver.frames_rejected == 0


def test_reference_bytes_end_to_end(clock: FakeClock) -> None:
    _, device, driver = rig(clock, pinned=(45.5, 38.25, 62.75))
    driver.start()
    clock.now += 10.0
    assert [r.value for r in driver.read()] == [45.5, 38.25, 62.75]
    assert ("r", LEQ_FRAME) in device.log


def test_each_read_covers_the_interval_since_the_previous_one(clock: FakeClock) -> None:
    _, device, driver = rig(clock, level_db=60.0)
    driver.start()
    clock.now += 30.0
    device.tick()  # 30 s at 60 dB ...
    device.level_db = 70.0
    clock.now += 30.0  # ... then 30 s at 70 dB
    laeq, lamin, lamax = (r.value for r in driver.read())
    # 67.40 dB for an even split; the interval ends at the next block boundary, so a few
    # more 70 dB blocks (< 125 ms) fall into it.
    assert laeq == pytest.approx(10 * math.log10((1e6 + 1e7) / 2), abs=0.05)
    assert (lamin, lamax) == (60.0, 70.0)
    clock.now += 60.0
    assert [r.value for r in driver.read()] == [70.0, 70.0, 70.0]  # the 60 dB part is gone


def test_random_street_noise_is_plausible_and_seeded(clock: FakeClock) -> None:
    _, _, driver = rig(clock, seed=3)
    driver.start()
    values = []
    for _ in range(10):
        clock.now += 60.0
        laeq, lamin, lamax = (r.value for r in driver.read())
        assert 30 < lamin <= laeq <= lamax < 90
        values.append(laeq)
    assert len(set(values)) == 10
    assert max(values) - min(values) < 25  # a drifting street level, not white noise


def test_not_ready_in_start_phase_then_a_stale_calculate_is_renewed(clock: FakeClock) -> None:
    _, device, driver = rig(clock, level_db=50.0, start_phase_s=3.0)
    driver.start()  # reset wait 1 s: still inside the 3 s start phase
    with pytest.raises(DataNotReady):
        driver.read()
    clock.now += 0.5
    device.log.clear()
    with pytest.raises(DataNotReady):
        driver.read()  # within REUSE_S: keeps polling the calculate sent at start
    assert written(device)[0] == "00 04"
    clock.now += 2.0
    device.log.clear()
    assert len(driver.read()) == 3  # that calculate is stale now: a fresh one is sent
    assert written(device)[0] == "00 03"
    assert written(device).count("00 03") == 1


def test_injected_not_ready_resumes_the_same_calculate(clock: FakeClock) -> None:
    _, device, driver = rig(clock, level_db=50.0)
    driver.start()
    clock.now += 5.0
    device.hold_not_ready(45)  # longer than the 40-poll budget
    device.log.clear()
    with pytest.raises(DataNotReady):
        driver.read()
    device.log.clear()
    assert len(driver.read()) == 3  # retried within REUSE_S: polls again, no new calculate
    assert written(device)[0] == "00 04"


def test_bad_crc_counts_and_the_retry_rereads_the_latch_on_v2(clock: FakeClock) -> None:
    _, device, driver = rig(clock, level_db=48.0)
    driver.start()
    clock.now += 5.0
    device.corrupt_next(command=0x0004)
    with pytest.raises(CrcError):
        driver.read()  # a data-ready poll was corrupted
    assert driver.frames_rejected == 1
    assert driver.read()[0].value == 48.0  # the retry resumes polling the same interval
    clock.now += 5.0
    device.corrupt_next(command=0x0005)
    with pytest.raises(CrcError) as caught:
        driver.read()  # READ_LEQ itself was corrupted ...
    assert caught.value.raw[:2] == bytes.fromhex("4240")
    assert driver.frames_rejected == 2
    device.log.clear()
    assert driver.read()[0].value == 48.0  # ... V2 keeps the latch: the retry re-reads it
    assert written(device) == ["00 05"]


def test_v6_zeroes_after_read_so_a_failed_read_loses_that_interval(clock: FakeClock) -> None:
    bus, _, driver = rig(clock, variant="v6", level_db=52.0)
    driver.start()
    clock.now += 5.0
    dev = I2CDevice(bus, ADDRESS)
    dev.write(bytes.fromhex("0003"))
    clock.now += 0.2
    dev.write(bytes.fromhex("0005"))
    first = parse_levels(dev.read(18))
    dev.write(bytes.fromhex("0005"))
    assert first == (52.0, 52.0, 52.0) and parse_levels(dev.read(18)) == (0.0, 0.0, 0.0)
    dev.write(bytes.fromhex("0004"))
    assert parse_data_ready(dev.read(3))  # V6 leaves data-ready set
    # The driver treats zeros as "already read": no value, and the next read starts anew.
    driver._latched_at = clock.now  # as if a READ_LEQ had just failed
    with pytest.raises(DataNotReady, match="zeros"):
        driver.read()
    clock.now += 5.0
    assert driver.read()[0].value == 52.0


def test_v2_latching_keeps_values_and_clears_data_ready(clock: FakeClock) -> None:
    bus, device, _ = rig(clock, level_db=44.0)
    dev = I2CDevice(bus, ADDRESS)
    dev.write(bytes.fromhex("0003"))
    clock.now += 5.0
    dev.write(bytes.fromhex("0004"))
    assert not parse_data_ready(dev.read(3))  # V2 processes no audio before RESET
    dev.write(bytes.fromhex("0001"))
    clock.now += 1.0
    dev.write(bytes.fromhex("0004"))
    assert parse_data_ready(dev.read(3))  # the pending calculate latched after the start phase
    dev.write(bytes.fromhex("0005"))
    assert parse_levels(dev.read(18)) == (44.0, 44.0, 44.0)
    dev.write(bytes.fromhex("0004"))
    assert not parse_data_ready(dev.read(3))  # cleared by READ_LEQ
    dev.write(bytes.fromhex("0005"))
    assert parse_levels(dev.read(18)) == (44.0, 44.0, 44.0)  # values kept
    dev.write(bytes.fromhex("0003"))
    dev.write(bytes.fromhex("0004"))
    assert not parse_data_ready(dev.read(3))  # not before the next block ends
    assert device.blocks > 0


def test_lzeq_on_v6_and_refused_by_v2(clock: FakeClock) -> None:
    _, _, driver = rig(clock, DnmsOptions(read_lzeq=True), variant="v6", level_db=50.0)
    driver.start()
    assert driver.identify()["firmware"] == "DNMS Version 6.0.x"
    clock.now += 10.0
    assert [(r.quantity, r.value) for r in driver.read()] == [
        ("laeq", 50.0), ("lamin", 50.0), ("lamax", 50.0), ("lzeq", 58.0)]
    _, device, old = rig(clock, DnmsOptions(read_lzeq=True), level_db=50.0)
    old.start()
    clock.now += 10.0
    with pytest.raises(SensorError, match="read_lzeq"):
        old.read()
    assert device.unknown_commands == 1


def test_wrong_device_is_refused_at_start(clock: FakeClock) -> None:
    _, _, driver = rig(clock, version="XYZ Version 1.0.0 beta")
    with pytest.raises(SensorError, match="not a DNMS"):
        driver.start()


def test_emulator_enforces_argument_crc_and_ignores_unknown_commands(clock: FakeClock) -> None:
    bus, device, _ = rig(clock)
    dev = I2CDevice(bus, ADDRESS)
    with pytest.raises(NackError):
        dev.write(bytes.fromhex("0003 0001 00"))  # argument CRC should be 0xB0
    with pytest.raises(NackError):
        dev.write(bytes.fromhex("0003 00"))  # ragged length
    assert not device.calculate_pending
    dev.write(bytes.fromhex("0003 0001 B0"))  # a correct CRC is accepted (and ignored)
    assert device.calculate_pending
    dev.write(bytes.fromhex("00 42"))
    assert device.unknown_commands == 1
    assert dev.read(3) == b"\xff\xff\xff"  # nothing prepared: idle bus
    lenient = DnmsDevice(strict_crc=False, clock=clock)
    lenient.on_write(bytes.fromhex("0003 0001 00"))  # the real firmware skips CRC bytes
    assert lenient.calculate_pending


def test_stop_forgets_the_open_interval(clock: FakeClock) -> None:
    _, device, driver = rig(clock, level_db=40.0)
    driver.start()
    driver.stop()
    device.log.clear()
    clock.now += 0.1
    assert len(driver.read()) == 3
    assert written(device)[0] == "00 03"
