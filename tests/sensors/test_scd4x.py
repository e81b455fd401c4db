"""SCD40/SCD41: datasheet frames, conversions, and the drivers against the emulator.

A fake clock drives the emulator and ``time.sleep``: the 500 ms stop, 400 ms FRC and
5 s single shot are honoured exactly, yet take no time."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.bus.i2c import I2CDevice
from agent.config.profiles import load_profile
from agent.emulators import registry as emulator_registry
from agent.emulators.scd4x import ADDRESS, DEFAULT_SERIAL, Scd4xDevice
from agent.errors import DataNotReady, NackError, SensorError
from agent.sensors import registry
from agent.sensors._sensirion import SensirionCommand, decode_words, encode_words
from agent.sensors.scd4x import (
    SINGLE_SHOT_S,
    STOP_S,
    Scd40,
    Scd40Options,
    Scd41,
    Scd41Options,
    encode_temperature_offset,
    is_data_ready,
    parse_frc_correction,
    parse_measurement,
    parse_serial,
    parse_temperature_offset,
)
from tests.clock import FakeClock
from tests.sensors.rigs import on_bus, written

PROFILES = Path(__file__).resolve().parents[2] / "firmware_profiles"


def rig(clock: FakeClock, model: str = "scd41", options: Scd40Options | None = None,
        **device_kwargs: object):
    device = Scd4xDevice(variant=model, clock=clock, **device_kwargs)  # type: ignore[arg-type]
    bus, i2c = on_bus(device, ADDRESS, clock)
    driver_type = Scd41 if model == "scd41" else Scd40
    options = options or (Scd41Options() if model == "scd41" else Scd40Options())
    return bus, device, driver_type(i2c, options)


def test_datasheet_read_measurement_example() -> None:
    co2, temperature, humidity = parse_measurement(bytes.fromhex("01F433 6667A2 5EB93C"))
    assert co2 == 500
    assert temperature == pytest.approx(25.0027, abs=1e-4)
    assert humidity == pytest.approx(37.0016, abs=1e-4)


def test_datasheet_command_frames() -> None:
    offset = SensirionCommand(0x241D, "set_temperature_offset")
    assert offset.encode(encode_temperature_offset(5.4)) == bytes.fromhex("241D07E648")
    assert parse_temperature_offset(decode_words(bytes.fromhex("091263"))[0]) == \
        pytest.approx(6.2004, abs=1e-4)
    assert SensirionCommand(0xE000, "pressure").encode(987) == bytes.fromhex("E00003DB42")
    assert SensirionCommand(0x362F, "frc").encode(480) == bytes.fromhex("362F01E0B4")
    assert parse_frc_correction(decode_words(bytes.fromhex("7FCE7B"))[0]) == -50
    assert SensirionCommand(0x2416, "asc").encode(1) == bytes.fromhex("24160001B0")
    assert encode_temperature_offset(4.0) == 1498


def test_datasheet_serial_number() -> None:
    words = decode_words(bytes.fromhex("F89631 9F07C2 3BBE89"))
    assert parse_serial(words) == 273325796834238 == DEFAULT_SERIAL


def test_data_ready_uses_the_lower_11_bits() -> None:
    assert is_data_ready(decode_words(bytes.fromhex("800604"))[0])
    assert not is_data_ready(decode_words(bytes.fromhex("8000A2"))[0])
    assert is_data_ready(0x0001) and is_data_ready(0x07FF)
    assert not is_data_ready(0xF800)


def test_conversions_at_range_ends() -> None:
    low = parse_measurement(encode_words([0, 0, 0]))
    high = parse_measurement(encode_words([0xFFFF, 0xFFFF, 0xFFFF]))
    assert low == (0, -45.0, 0.0)
    assert high == (65535, 130.0, 100.0)
    assert encode_temperature_offset(0.0) == 0
    assert encode_temperature_offset(174.997) == 0xFFFF
    with pytest.raises(ValueError):
        encode_temperature_offset(-0.1)
    with pytest.raises(ValueError):
        encode_temperature_offset(175.0)
    with pytest.raises(SensorError):
        parse_frc_correction(0xFFFF)
    assert parse_frc_correction(0x8000) == 0


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_measurement_words_round_trip(co2: int, t_word: int, rh_word: int) -> None:
    value_co2, temperature, humidity = parse_measurement(encode_words([co2, t_word, rh_word]))
    assert value_co2 == co2
    assert round((temperature + 45) * 65535 / 175) == t_word  # inverse of the datasheet
    assert round(humidity * 65535 / 100) == rh_word


@given(st.floats(0.0, 174.99))
def test_temperature_offset_round_trip(offset: float) -> None:
    assert parse_temperature_offset(encode_temperature_offset(offset)) == \
        pytest.approx(offset, abs=175 / 65536)


def test_single_shot_is_an_scd41_option_only() -> None:
    with pytest.raises(ValueError, match="single_shot"):
        Scd40Options(mode="single_shot")
    assert Scd41Options(mode="single_shot").mode == "single_shot"
    for bad in ({"altitude_m": 3001}, {"ambient_pressure_hpa": 699},
                {"temperature_offset_c": -1.0}, {"mode": "turbo"}):
        with pytest.raises(ValueError):
            Scd41Options(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("model", "driver", "options"),
                         [("scd40", Scd40, Scd40Options), ("scd41", Scd41, Scd41Options)])
def test_registered_once_each_and_matches_profile(model: str, driver: type,
                                                  options: type) -> None:
    spec = registry()[model]
    assert spec.driver_type is driver and spec.options_type is options
    assert driver.model == model
    profile = load_profile(PROFILES / f"{model}.toml")
    assert tuple(q.name for q in profile.quantities) == driver.quantities
    assert profile.address == ADDRESS
    device = emulator_registry()[model].factory()
    assert isinstance(device, Scd4xDevice) and device.variant == model


def test_start_speaks_the_exact_bytes(clock: FakeClock) -> None:
    _, device, driver = rig(clock, "scd40", Scd40Options(
        asc=False, altitude_m=50, ambient_pressure_hpa=987, temperature_offset_c=5.4))
    driver.start()
    assert written(device) == [
        "3f 86",            # stop a measurement left running
        "36 82",            # serial number
        "24 1d 07 e6 48",   # temperature offset 5.4 °C (datasheet example)
        "24 27 00 32 26",   # altitude 50 m
        "e0 00 03 db 42",   # ambient pressure 987 hPa (datasheet example)
        "24 16 00 00 81",   # ASC off
        "21 b1",            # start periodic measurement
    ]
    assert ("r", bytes.fromhex("F896319F07C23BBE89")) in device.log
    settings = device.settings
    assert (settings.temperature_offset_word, settings.altitude_m) == (0x07E6, 50)
    assert (settings.ambient_pressure_hpa, settings.compensation, settings.asc) == \
        (987, "pressure", False)
    assert device.state == "periodic"
    assert driver.identify() == {"serial": "f8969f073bbe"}
    assert device.persist_count == 0  # never written to EEPROM unasked


def test_datasheet_measurement_bytes_end_to_end(clock: FakeClock) -> None:
    _, device, driver = rig(clock, "scd40", co2_ppm=500, temperature_c=25.0027,
                            humidity_pct=37.0016)
    driver.start()
    clock.now += 5.0
    readings = driver.read()
    assert ("r", bytes.fromhex("01F4336667A25EB93C")) in device.log
    assert [r.quantity for r in readings] == ["co2", "temperature", "relative_humidity"]
    assert readings[0].value == 500.0
    assert readings[1].value == pytest.approx(25.0027, abs=1e-4)


def test_each_sample_is_read_once(clock: FakeClock) -> None:
    bus, device, driver = rig(clock, "scd40")
    driver.start()
    with pytest.raises(DataNotReady):
        driver.read()  # nothing before the first 5 s update
    clock.now += 5.0
    first = driver.read()
    with pytest.raises(DataNotReady):
        driver.read()
    clock.now += 5.0
    second = driver.read()
    assert device.samples == 2 and first != second  # the random walk moved
    dev = I2CDevice(bus, ADDRESS)
    dev.write(bytes.fromhex("EC05"))  # read_measurement with an empty buffer:
    clock.now += 0.001
    with pytest.raises(NackError):
        dev.read(9)  # the sensor NACKs the read header


def test_low_power_mode_updates_every_30_s(clock: FakeClock) -> None:
    _, device, driver = rig(clock, "scd40", Scd40Options(mode="low_power"))
    driver.start()
    assert written(device)[-1] == "21 ac"
    clock.now += 29.0
    with pytest.raises(DataNotReady):
        driver.read()
    clock.now += 1.0
    assert len(driver.read()) == 3
    _, fast, fast_driver = rig(clock, "scd40", periodic_interval_s=0.1)  # shortened for tests
    fast_driver.start()
    clock.now += 0.1
    assert len(fast_driver.read()) == 3 and fast.samples == 1


def test_warm_restart_stops_the_running_measurement(clock: FakeClock) -> None:
    bus, device, driver = rig(clock, "scd40", Scd40Options(asc=False))
    I2CDevice(bus, ADDRESS).write(bytes.fromhex("21B1"))  # left running by a previous run
    assert device.measuring
    driver.start()  # would be NACKed at set ASC if it did not stop first
    assert not device.settings.asc and device.state == "periodic"


def test_emulator_refuses_settings_while_measuring_and_bad_crc(clock: FakeClock) -> None:
    bus, device, driver = rig(clock, "scd40")
    driver.start()
    dev = I2CDevice(bus, ADDRESS)
    with pytest.raises(NackError):
        dev.write(bytes.fromhex("2416 0000 81"))  # set ASC: idle only
    assert device.settings.asc
    dev.write(bytes.fromhex("E000 03F5 DB"))  # ambient pressure is allowed while measuring
    assert device.settings.ambient_pressure_hpa == 1013
    clock.now += 0.001  # its execution time
    driver.stop()
    clock.now += STOP_S
    with pytest.raises(NackError):
        dev.write(bytes.fromhex("2416 0000 00"))  # wrong argument CRC (0x81)
    assert device.settings.asc
    with pytest.raises(NackError):
        dev.write(bytes.fromhex("219D"))  # single shot: not an SCD40 command
    dev.write(bytes.fromhex("2416 0000 81"))
    assert not device.settings.asc


def test_forced_recalibration_stops_and_restarts(clock: FakeClock) -> None:
    _, device, driver = rig(clock, "scd40", co2_ppm=530)
    driver.start()
    clock.now += 5.0
    driver.read()
    device.log.clear()
    assert driver.perform_forced_recalibration(480) == -50  # the datasheet example
    assert written(device) == ["3f 86", "36 2f 01 e0 b4", "21 b1"]
    assert ("r", bytes.fromhex("7FCE7B")) in device.log
    clock.now += 5.0
    assert driver.read()[0].value == 480.0


def test_failed_forced_recalibration_raises(clock: FakeClock) -> None:
    _, device, driver = rig(clock, "scd40")
    driver.start()
    with pytest.raises(SensorError, match="failed"):
        driver.perform_forced_recalibration(400)  # no measurement taken yet
    assert device.state == "periodic"  # measurement was resumed
    with pytest.raises(ValueError):
        driver.perform_forced_recalibration(2500)


def test_settings_methods_change_the_sensor(clock: FakeClock) -> None:
    _, device, driver = rig(clock, "scd40")
    driver.start()
    driver.set_asc_enabled(False)
    assert not device.settings.asc and not driver.asc_enabled()
    driver.set_sensor_altitude(400)
    assert driver.sensor_altitude() == 400 and device.settings.compensation == "altitude"
    driver.set_ambient_pressure(1005)
    assert driver.ambient_pressure() == 1005 and device.settings.compensation == "pressure"
    driver.set_temperature_offset(3.0)
    assert driver.temperature_offset() == pytest.approx(3.0, abs=0.003)
    assert device.state == "periodic" and device.persist_count == 0
    driver.persist_settings()
    assert device.persist_count == 1 and device.eeprom == device.settings
    with pytest.raises(ValueError):
        driver.set_ambient_pressure(1300)


def test_temperature_offset_moves_the_reported_temperature(clock: FakeClock) -> None:
    _, _, driver = rig(clock, "scd40", Scd40Options(temperature_offset_c=6.0),
                       temperature_c=20.0)
    driver.start()
    clock.now += 5.0
    # Factory offset 4 °C cancels the self-heating; 2 °C more reads 2 °C lower.
    assert driver.read()[1].value == pytest.approx(18.0, abs=0.01)


def test_reset_reloads_eeprom_then_applies_options(clock: FakeClock) -> None:
    _, device, driver = rig(clock, "scd40", Scd40Options(altitude_m=10))
    driver.start()
    device.log.clear()
    driver.reset()
    assert written(device)[:3] == ["3f 86", "36 46", "3f 86"]
    assert device.settings.altitude_m == 10 and device.state == "periodic"


def test_scd41_single_shot_discards_the_first_shot_after_wake(clock: FakeClock) -> None:
    _, device, driver = rig(clock, "scd41", Scd41Options(mode="single_shot"), co2_ppm=700)
    driver.start()
    assert device.state == "idle" and written(device)[0] == "36 f6"  # wake_up first
    before = clock.now
    readings = driver.read()
    assert readings[0].value == 700.0
    assert device.samples == 2  # the first shot after wake-up was thrown away
    assert clock.now - before >= 2 * SINGLE_SHOT_S
    driver.read()
    assert device.samples == 3
    assert written(device).count("21 9d") == 3


def test_scd41_stop_powers_down_and_start_wakes(clock: FakeClock) -> None:
    bus, device, driver = rig(clock, "scd41")
    driver.start()
    driver.stop()
    assert device.state == "sleep" and driver.powered_down
    with pytest.raises(NackError):
        I2CDevice(bus, ADDRESS).write(bytes.fromhex("3682"))  # asleep: deaf
    driver.start()
    assert device.state == "periodic" and not driver.powered_down
    clock.now += 5.0
    assert len(driver.read()) == 3
    _, scd40_device, scd40 = rig(clock, "scd40")
    scd40.start()
    scd40.stop()  # the SCD40 has no power_down: it stays idle
    assert scd40_device.state == "idle" and not hasattr(scd40, "power_down")
