"""SPS30 (I2C): pure framing against real and datasheet bytes, then driver <-> emulator."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

import agent.sensors._sensirion as sensirion_mod
from agent.bus.i2c import I2CDevice
from agent.config.profiles import all_profiles
from agent.emulators import registry as emulator_registry
from agent.emulators.i2c_bus import EmulatedI2CBus
from agent.emulators.sps30 import IDLE, MEASURING, SLEEP, Sps30Device
from agent.errors import FrameError, NackError, SensorError
from agent.sensors import registry
from agent.sensors.sps30 import (
    QUANTITIES,
    Sps30,
    Sps30Options,
    encode_auto_cleaning_interval,
    encode_float_values,
    encode_start,
    encode_uint16_values,
    parse_data_ready,
    parse_firmware,
    parse_float_values,
    parse_serial,
    parse_uint16_values,
)
from tests.clock import FakeClock
from tests.sensors.rigs import crc_error_of, flipped, on_bus

ADDRESS = 0x69

# Real SPS30 measurement (PyPMS capture, reframed for I2C; sensor-protocols.md §3a).
REAL_FRAME = bytes.fromhex(
    "40 A7 63 83 20 09 41 17 28 77 BB 41 41 4A 1A 5F 83 D6 41 54 46 8D DD AA"
    " 41 D2 9A 83 3E 55 42 13 C1 FC 85 A2 42 26 F1 17 22 A5 42 29 DF A4 D9 71"
    " 42 2A 8C 29 BC 5C 3F 55 21 B7 E7 E8")
REAL_VALUES = (5.2348, 9.4667, 12.6483, 13.2846, 26.3141, 36.9966, 41.5226, 42.4110, 42.5408,
               0.8348)
# The exact float32 values inside REAL_FRAME, for pinning the emulator.
REAL_FLOATS = dict(zip(QUANTITIES, struct.unpack(
    ">10f", b"".join(REAL_FRAME[i:i + 2] for i in range(0, 60, 3))), strict=True))


def rig(clock: FakeClock, options: Sps30Options | None = None,
        **device_kwargs: object) -> tuple[Sps30, Sps30Device, EmulatedI2CBus]:
    device = Sps30Device(clock=clock, **device_kwargs)  # type: ignore[arg-type]
    bus, i2c = on_bus(device, ADDRESS, clock)
    return Sps30(i2c, options or Sps30Options()), device, bus


def started(clock: FakeClock, options: Sps30Options | None = None,
            **device_kwargs: object) -> tuple[Sps30, Sps30Device, EmulatedI2CBus]:
    """Started, and one measurement interval later."""
    driver, device, bus = rig(clock, options, **device_kwargs)
    driver.start()
    clock.now += 1.0
    return driver, device, bus


# --- pure framing -------------------------------------------------------------------------
def test_real_frame_decodes_to_the_captured_values() -> None:
    assert parse_float_values(REAL_FRAME) == pytest.approx(REAL_VALUES, abs=1e-4)


def test_start_commands_match_the_datasheet_bytes() -> None:
    assert encode_start("float") == bytes.fromhex("00 10 03 00 AC")
    assert encode_start("uint16") == bytes.fromhex("00 10 05 00 F6")


def test_firmware_auto_clean_and_data_ready_vectors() -> None:
    assert parse_firmware(bytes.fromhex("02 02 3A")) == (2, 2)
    assert encode_auto_cleaning_interval(604800) == bytes.fromhex("80 04 00 09 09 3A 80 A7")
    assert parse_data_ready(bytes.fromhex("00 01 B0")) is True
    assert parse_data_ready(bytes.fromhex("00 00 81")) is False


def test_serial_is_nul_terminated_ascii() -> None:
    words = b"3E5F0A1B".ljust(32, b"\x00")
    framed = sensirion_mod.encode_words(
        int.from_bytes(words[i:i + 2], "big") for i in range(0, 32, 2))
    assert parse_serial(framed) == "3E5F0A1B"


def test_bad_crc_raises_with_evidence() -> None:
    error = crc_error_of(parse_float_values, flipped(REAL_FRAME, 2))
    assert (error.expected, error.received) == (0x63, 0x62)


def test_truncated_frame_is_a_frame_error() -> None:
    with pytest.raises(FrameError):
        parse_float_values(REAL_FRAME[:57])


@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False),
                min_size=10, max_size=10))
def test_float_format_round_trips(values: list[float]) -> None:
    assert parse_float_values(encode_float_values(values)) == tuple(values)


@given(st.lists(st.integers(0, 0xFFFF), min_size=9, max_size=9), st.integers(0, 0xFFFF))
def test_uint16_format_round_trips(counts: list[int], size_nm: int) -> None:
    values = [*map(float, counts), size_nm / 1000.0]
    assert parse_uint16_values(encode_uint16_values(values)) == tuple(values)


# --- driver against the emulator -------------------------------------------------------------
def test_end_to_end_float_frame_is_byte_for_byte_the_real_one(clock: FakeClock) -> None:
    driver, device, bus = started(clock, values=REAL_FLOATS)
    assert device.writes[-1] == bytes.fromhex("00 10 03 00 AC")
    readings = driver.read()
    assert [r.quantity for r in readings] == list(QUANTITIES)
    assert [r.value for r in readings] == pytest.approx(REAL_VALUES, abs=1e-4)
    raw = I2CDevice(bus, ADDRESS)
    raw.write(b"\x03\x00")
    assert raw.read(60) == REAL_FRAME


def test_uint16_output_end_to_end(clock: FakeClock) -> None:
    driver, device, _ = started(clock, Sps30Options(output="uint16"), values=REAL_FLOATS)
    assert device.writes[-1] == bytes.fromhex("00 10 05 00 F6")
    values = {r.quantity: r.value for r in driver.read()}
    assert values["pm2_5"] == 9.0
    assert values["nc10"] == 43.0
    assert values["typical_particle_size"] == 0.835  # 835 nm


def test_uint16_on_old_firmware_is_refused(clock: FakeClock) -> None:
    driver, _, _ = rig(clock, Sps30Options(output="uint16"), firmware=(1, 0))
    with pytest.raises(SensorError, match="uint16"):
        driver.start()


def test_emulated_values_are_plausible_and_ordered(clock: FakeClock) -> None:
    driver, _, _ = started(clock)
    for _ in range(5):
        v = {r.quantity: r.value for r in driver.read()}
        assert 0 < v["pm1_0"] <= v["pm2_5"] <= v["pm4_0"] <= v["pm10"] < 1000
        assert 0 < v["nc0_5"] <= v["nc1_0"] <= v["nc2_5"] <= v["nc4_0"] <= v["nc10"] < 3000
        assert 0.3 < v["typical_particle_size"] < 10
        clock.now += 1.0


def test_start_wakes_a_sleeping_sensor(clock: FakeClock) -> None:
    driver, device, _ = rig(clock, asleep=True)
    driver.start()
    assert device.state == MEASURING


def test_sleep_between_readings(clock: FakeClock) -> None:
    driver, device, _ = started(clock, Sps30Options(sleep_between=True))
    driver.sleep()
    assert device.state == SLEEP
    with pytest.raises(NackError):
        driver.read()
    driver.wake()
    assert device.state == MEASURING
    clock.now += 1.0
    assert len(driver.read()) == 10


def test_sleep_is_a_no_op_without_the_option(clock: FakeClock) -> None:
    driver, device, _ = started(clock)
    driver.sleep()
    driver.wake()
    assert device.state == MEASURING


def test_stop_sleeps_on_new_firmware_and_idles_on_old(clock: FakeClock) -> None:
    driver, device, _ = started(clock)
    driver.stop()
    assert device.state == SLEEP
    driver.stop()  # already asleep: nothing to send, nothing to fail
    old, old_device, _ = started(clock, firmware=(1, 0))
    old.stop()
    assert old_device.state == IDLE


def test_identify(clock: FakeClock) -> None:
    driver, _, _ = rig(clock, serial="ABCDEF0123456789", firmware=(2, 3))
    assert driver.identify() == {"serial": "ABCDEF0123456789", "firmware": "2.3"}


def test_reset_waits_100_ms_and_restarts(clock: FakeClock, sleeps: list[float]) -> None:
    driver, device, _ = started(clock)
    device.status = 1 << 4
    driver.reset()
    assert 0.100 in sleeps
    assert device.state == MEASURING
    assert device.status == 0
    clock.now += 1.0
    assert len(driver.read()) == 10


def test_status_register_skipped_before_firmware_2_2(clock: FakeClock) -> None:
    driver, device, _ = started(clock, firmware=(2, 1))
    assert len(driver.read()) == 10
    assert b"\xd2\x06" not in device.writes


# --- the emulator's own protocol checks -------------------------------------------------------
def test_emulator_rejects_a_start_with_a_bad_argument_crc(clock: FakeClock) -> None:
    _, device, bus = rig(clock)
    raw = I2CDevice(bus, ADDRESS)
    with pytest.raises(NackError):
        raw.write(bytes.fromhex("00 10 03 00 00"))
    assert device.state == IDLE
    with pytest.raises(NackError):
        raw.read(3)  # nothing was asked


def test_emulator_sleep_needs_two_wake_writes(clock: FakeClock) -> None:
    _, device, bus = rig(clock, asleep=True)
    raw = I2CDevice(bus, ADDRESS)
    with pytest.raises(NackError):
        raw.write(b"\x11\x03")
    raw.write(b"\x11\x03")
    assert device.state == IDLE


def test_emulator_wake_window_expires(clock: FakeClock) -> None:
    _, device, bus = rig(clock, asleep=True)
    raw = I2CDevice(bus, ADDRESS)
    with pytest.raises(NackError):
        raw.write(b"\x11\x03")
    clock.now += 0.2
    with pytest.raises(NackError):
        raw.write(b"\x11\x03")
    assert device.state == SLEEP


# --- registration and profile ---------------------------------------------------------------
def test_registered_and_matching_the_profile() -> None:
    spec = registry()["sps30"]
    assert spec.driver_type is Sps30
    assert spec.options_type is Sps30Options
    profile = all_profiles()["sps30"]
    assert tuple(q.name for q in profile.quantities) == Sps30.quantities
    assert profile.address == ADDRESS
    assert isinstance(emulator_registry()["sps30"].factory(), Sps30Device)


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="output"):
        Sps30Options(output="ascii")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="auto_cleaning"):
        Sps30Options(auto_cleaning_interval_s=-1)
