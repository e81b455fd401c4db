"""SCD30: datasheet frames, conversions, and the driver against its emulator byte for byte.

The emulator and ``time.sleep`` share a fake clock, so datasheet delays (3 ms
read delay, 2 s boot) are honoured exactly and the tests still run instantly.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.bus.i2c import I2CDevice
from agent.config.profiles import load_profile
from agent.emulators import registry as emulator_registry
from agent.emulators._sensirion import float_words, frame_words
from agent.emulators.scd30 import ADDRESS, Scd30Device
from agent.errors import CrcError, DataNotReady, FrameError, NackError, SensorError
from agent.sensors import registry
from agent.sensors._sensirion import SensirionCommand, decode_words, encode_words
from agent.sensors.scd30 import (
    BOOT_S,
    Scd30,
    Scd30Options,
    offset_to_ticks,
    parse_firmware,
    parse_measurement,
)
from tests.clock import FakeClock
from tests.sensors.rigs import crc_error_of, flipped, on_bus, written

PROFILES = Path(__file__).resolve().parents[2] / "firmware_profiles"
DATASHEET_FRAME = bytes.fromhex("43DBCB8C2E8F41D970E7FFF54243BF3A1B74")


def rig(clock: FakeClock, options: Scd30Options | None = None, **device_kwargs: object):
    device = Scd30Device(clock=clock, **device_kwargs)  # type: ignore[arg-type]
    bus, i2c = on_bus(device, ADDRESS, clock)
    return bus, device, Scd30(i2c, options or Scd30Options())


# -- pure functions ---------------------------------------------------------------------


def test_datasheet_measurement_frame_decodes() -> None:
    co2, temperature, humidity = parse_measurement(DATASHEET_FRAME)
    assert co2 == pytest.approx(439.0952, abs=1e-4)  # 0x43DB8C2E, interface description §1.5
    assert temperature == pytest.approx(27.2383, abs=1e-4)
    assert humidity == pytest.approx(48.8067, abs=1e-4)


def test_datasheet_crc_words_decode() -> None:
    assert decode_words(bytes.fromhex("01F433")) == [500]
    assert decode_words(bytes.fromhex("BEEF92")) == [0xBEEF]
    assert encode_words([0x0000, 0x0001, 0x0002]) == bytes.fromhex("000081 0001B0 0002E3")


def test_measurement_with_bad_crc_names_the_evidence() -> None:
    error = crc_error_of(parse_measurement, flipped(DATASHEET_FRAME, 5))
    assert (error.expected, error.received) == (0x8F, 0x8E)


def test_truncated_or_non_finite_measurement_is_refused() -> None:
    with pytest.raises(FrameError):
        parse_measurement(DATASHEET_FRAME[:-1])
    with pytest.raises(FrameError):
        parse_measurement(DATASHEET_FRAME[:12])
    with pytest.raises(SensorError):
        parse_measurement(frame_words(float_words(math.nan, 20.0, 50.0)))


def test_reference_command_frames() -> None:
    assert SensirionCommand(0x0010, "start").encode(0) == bytes.fromhex("0010000081")
    assert SensirionCommand(0x0010, "start").encode(1013) == bytes.fromhex("001003F5DB")
    assert SensirionCommand(0x4600, "interval").encode(2) == bytes.fromhex("46000002E3")
    assert SensirionCommand(0x5204, "frc").encode(400) == bytes.fromhex("520401904C")
    assert SensirionCommand(0x5306, "asc").encode(1) == bytes.fromhex("53060001B0")


def test_unit_conversions_at_range_ends() -> None:
    assert offset_to_ticks(0.0) == 0
    assert offset_to_ticks(655.35) == 0xFFFF
    assert offset_to_ticks(1.5) == 150
    with pytest.raises(ValueError, match="outside"):
        offset_to_ticks(-0.01)
    assert parse_firmware(0x0342) == "3.66"


@given(st.lists(st.integers(0, 0xFFFF), max_size=20))
def test_words_round_trip(words: list[int]) -> None:
    assert decode_words(encode_words(words)) == words


@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=8), st.data())
def test_any_corrupted_crc_is_caught(words: list[int], data: st.DataObject) -> None:
    frame = bytearray(encode_words(words))
    index = data.draw(st.integers(0, len(words) - 1)) * 3 + 2
    frame[index] ^= data.draw(st.integers(1, 0xFF))
    with pytest.raises(CrcError):
        decode_words(bytes(frame))


@given(st.tuples(*[st.floats(width=32, allow_nan=False, allow_infinity=False)] * 3))
def test_emulator_floats_round_trip_through_parser(values: tuple[float, float, float]) -> None:
    assert parse_measurement(frame_words(float_words(*values))) == values


# -- options, registry, profile ------------------------------------------------------------


def test_options_are_validated() -> None:
    for bad in ({"interval_s": 1}, {"interval_s": 1801}, {"ambient_pressure_mbar": 699},
                {"ambient_pressure_mbar": 1401}, {"temperature_offset_c": -1.0}):
        with pytest.raises(ValueError):
            Scd30Options(**bad)  # type: ignore[arg-type]
    assert Scd30Options(ambient_pressure_mbar=0).ambient_pressure_mbar == 0


def test_registered_and_matches_profile() -> None:
    spec = registry()["scd30"]
    assert spec.driver_type is Scd30 and spec.options_type is Scd30Options
    profile = load_profile(PROFILES / "scd30.toml")
    assert tuple(q.name for q in profile.quantities) == Scd30.quantities
    assert profile.address == ADDRESS
    assert isinstance(emulator_registry()["scd30"].factory(), Scd30Device)


# -- driver against emulator -----------------------------------------------------------------


def test_start_speaks_the_exact_bytes(clock: FakeClock) -> None:
    _, device, driver = rig(clock, Scd30Options(interval_s=5, asc=True, altitude_m=30,
                                                ambient_pressure_mbar=1013,
                                                temperature_offset_c=1.5))
    driver.start()
    assert written(device) == [
        "01 04",                              # stop whatever runs (warm restart)
        "d1 00",                              # firmware probe
        "46 00", "46 00 00 05 74",            # interval 2 -> 5
        "53 06", "53 06 00 01 b0",            # ASC off -> on
        "51 02", "51 02 00 1e dd",            # altitude 0 -> 30 m
        "54 03", "54 03 00 96 1e",            # offset 0 -> 150 ticks
        "00 10 03 f5 db",                     # start with 1013 mbar
    ]
    assert ("r", bytes.fromhex("0342f3")) in device.log
    assert (device.interval_s, device.asc, device.altitude_m) == (5, True, 30)
    assert device.temperature_offset_ticks == 150 and device.ambient_pressure_mbar == 1013
    assert device.measuring and driver.firmware == "3.66"


def test_settings_already_stored_are_not_rewritten(clock: FakeClock) -> None:
    _, device, driver = rig(clock, Scd30Options(interval_s=5, asc=True))
    driver.start()
    device.log.clear()
    driver.start()
    assert written(device) == ["01 04", "d1 00", "46 00", "53 06", "00 10 00 00 81"]


def test_reads_each_sample_once(clock: FakeClock) -> None:
    _, device, driver = rig(clock, co2_ppm=612.5, temperature_c=19.25, humidity_pct=61.5)
    driver.start()
    with pytest.raises(DataNotReady):
        driver.read()  # no sample before the first interval has passed
    clock.now += 2.0
    readings = driver.read()
    assert [(r.quantity, r.value) for r in readings] == [
        ("co2", 612.5), ("temperature", 19.25), ("relative_humidity", 61.5)]
    with pytest.raises(DataNotReady):
        driver.read()  # the same sample is never returned twice
    clock.now += 2.0
    assert driver.read()[0].value == 612.5
    assert device.samples == 2


def test_sample_interval_override_and_walk(clock: FakeClock) -> None:
    _, _, driver = rig(clock, seed=7, sample_interval_s=0.5)
    driver.start()
    values = []
    for _ in range(5):
        clock.now += 0.5
        values.append(driver.read()[0].value)
    assert len(set(values)) > 1 and all(400 <= v <= 2500 for v in values)


def test_warm_restart_finds_sensor_measuring(clock: FakeClock) -> None:
    _, device, driver = rig(clock, measuring=True)
    driver.start()
    assert written(device)[0] == "01 04" and device.measuring
    clock.now += 2.0
    assert len(driver.read()) == 3


def test_reset_waits_for_boot(clock: FakeClock) -> None:
    _, device, driver = rig(clock)
    driver.start()
    before = clock.now
    driver.reset()
    assert clock.now - before >= BOOT_S
    assert "d3 04" in written(device) and device.measuring


def test_calibration_commands_change_the_sensor(clock: FakeClock) -> None:
    _, device, driver = rig(clock, co2_ppm=455.0)
    driver.start()
    driver.set_forced_recalibration(420)
    assert device.frc_ppm == 420 and driver.forced_recalibration() == 420
    clock.now += 2.0
    assert driver.read()[0].value == 420.0  # output moved to the reference
    driver.set_asc(True)
    assert device.asc and driver.asc_enabled()
    driver.set_altitude(120)
    assert driver.altitude() == 120 == device.altitude_m
    driver.set_temperature_offset(2.25)
    assert driver.temperature_offset() == pytest.approx(2.25)
    driver.set_ambient_pressure(985)
    assert device.ambient_pressure_mbar == 985
    with pytest.raises(ValueError):
        driver.set_forced_recalibration(399)
    with pytest.raises(ValueError):
        driver.set_ambient_pressure(650)
    assert driver.identify() == {"firmware": "3.66"}


def test_emulator_rejects_bad_argument_crc_and_unknown_commands(clock: FakeClock) -> None:
    bus, device, _ = rig(clock)
    dev = I2CDevice(bus, ADDRESS)
    with pytest.raises(NackError):
        dev.write(bytes.fromhex("4600 0005 00"))  # CRC should be 0x74
    assert device.interval_s == 2
    with pytest.raises(NackError):
        dev.write(bytes.fromhex("4600 0001 B0"))  # good CRC, interval 1 s out of range
    with pytest.raises(NackError):
        dev.write(bytes.fromhex("BEEF"))
    with pytest.raises(NackError):
        dev.write(bytes.fromhex("4600 00"))  # truncated argument
    assert device.interval_s == 2


def test_emulator_refuses_a_read_without_the_3ms_wait(clock: FakeClock) -> None:
    bus, _, _ = rig(clock)
    dev = I2CDevice(bus, ADDRESS)
    dev.write(bytes.fromhex("D100"))
    with pytest.raises(NackError):
        dev.read(3)
    dev.write(bytes.fromhex("D100"))
    clock.now += 0.003
    assert dev.read(3) == bytes.fromhex("0342F3")


def test_stop_ends_measurement(clock: FakeClock) -> None:
    _, device, driver = rig(clock)
    driver.start()
    driver.stop()
    assert not device.measuring
    clock.now += 10
    with pytest.raises(DataNotReady):
        driver.read()


def test_struct_layout_is_big_endian() -> None:
    # Guards the word order: the MSW of each float comes first on the wire.
    assert float_words(439.09515) == list(struct.unpack(">HH", struct.pack(">f", 439.09515)))
