"""SHT4x: datasheet formulas (RH clipped), driver against emulator, heater duty limiting."""

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config.profiles import all_profiles
from agent.emulators import registry as emulator_registry
from agent.emulators.sht3x import sht3x_raw_temperature
from agent.emulators.sht4x import Sht4xDevice, sht4x_raw_humidity
from agent.errors import DataNotReady, FrameError, NackError
from agent.sensors import registry
from agent.sensors.sht4x import (
    Sht4x,
    Sht4xOptions,
    convert_humidity,
    convert_temperature,
    parse_measurement,
)
from tests.sensors.rigs import crc_error_of, flipped, on_bus

ADDRESS = 0x44
# Computed example: raw T 0x6666 (CRC 0x93), RH 0x72B0 (CRC 0xDC).
EXAMPLE_FRAME = bytes.fromhex("666693 72B0DC")


def rig(options: Sht4xOptions | None = None, **emulator_kwargs: object):
    """Driver and chip on real time (the heater's cool-down is real); the chip logs its
    traffic."""
    chip = Sht4xDevice(**emulator_kwargs)  # type: ignore[arg-type]
    _, device = on_bus(chip, ADDRESS)
    return chip, Sht4x(device, options or Sht4xOptions())


# -- pure functions ------------------------------------------------------------------

def test_example_frame_decodes_with_the_sht4x_humidity_formula() -> None:
    temperature, humidity = parse_measurement(EXAMPLE_FRAME)
    assert temperature == pytest.approx(25.0, abs=1e-4)
    assert humidity == pytest.approx(50.0006, abs=1e-4)


def test_bad_crc_and_short_frame() -> None:
    error = crc_error_of(parse_measurement, flipped(EXAMPLE_FRAME, 2, 0x93))
    assert (error.expected, error.received) == (0x93, 0x00)
    with pytest.raises(FrameError):
        parse_measurement(EXAMPLE_FRAME + b"\x00")


@pytest.mark.parametrize(("raw", "celsius", "percent"),
                         [(0, -45.0, 0.0), (0xFFFF, 130.0, 100.0), (3146, -36.5991, 0.0006)])
def test_conversions_at_range_ends_clip_humidity(raw: int, celsius: float, percent: float) -> None:
    # Unclipped, raw 0 would be -6 %RH and raw 0xFFFF 119 %RH (datasheet pseudo code crops).
    assert convert_temperature(raw) == pytest.approx(celsius, abs=1e-4)
    assert convert_humidity(raw) == pytest.approx(percent, abs=1e-4)


@given(st.integers(0, 0xFFFF))
def test_temperature_round_trip(raw: int) -> None:
    assert sht3x_raw_temperature(convert_temperature(raw)) == raw


@given(st.integers(3146, 55574))  # the raw span that maps inside 0..100 %RH
def test_humidity_round_trip_inside_the_unclipped_span(raw: int) -> None:
    assert sht4x_raw_humidity(convert_humidity(raw)) == raw


def test_options_validate() -> None:
    with pytest.raises(ValueError, match="precision"):
        Sht4xOptions(precision="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="heater"):
        Sht4xOptions(heater="500mw_1s")  # type: ignore[arg-type]


# -- driver against the emulator -----------------------------------------------------

def test_driver_talks_byte_for_byte() -> None:
    chip, driver = rig(temperature=25.0, humidity=50.0006)
    driver.start()
    readings = driver.read()
    assert chip.log == [("w", b"\x94"), ("w", b"\xfd"), ("r", EXAMPLE_FRAME)]
    assert [r.quantity for r in readings] == list(Sht4x.quantities)
    assert readings[1].value == pytest.approx(50.0006, abs=1e-4)


@pytest.mark.parametrize(("precision", "code"), [("medium", b"\xf6"), ("low", b"\xe0")])
def test_precision_selects_the_command(precision: str, code: bytes) -> None:
    chip, driver = rig(Sht4xOptions(precision=precision))  # type: ignore[arg-type]
    driver.read()
    assert chip.log[0] == ("w", code)


@pytest.mark.parametrize(("celsius", "percent"), [(-40.0, 0.0), (125.0, 100.0), (3.3, 97.5)])
def test_values_read_back_across_the_range(celsius: float, percent: float) -> None:
    _, driver = rig(temperature=celsius, humidity=percent)
    temperature, humidity = (r.value for r in driver.read())
    assert temperature == pytest.approx(celsius, abs=0.0014)  # half a step of 175/65535
    assert humidity == pytest.approx(percent, abs=0.001)


def test_identify_reads_the_serial_number() -> None:
    chip, driver = rig(serial=0x12345678)
    assert driver.identify() == {"serial": "12345678"}
    assert chip.log[0] == ("w", b"\x89")


# -- heater --------------------------------------------------------------------------

def test_heater_pulses_after_a_reading_then_cools_down_and_respects_duty() -> None:
    options = Sht4xOptions(heater="200mw_100ms", heater_interval_s=0.5, heater_min_rh=80.0,
                           heater_cooldown_s=0.05)
    chip, driver = rig(options, temperature=12.0, humidity=92.0)
    assert driver.heater_gap_s == pytest.approx(1.0)  # 0.1 s on at ≤ 10 % duty
    first = driver.read()
    assert first[1].value == pytest.approx(92.0, abs=0.001)  # the reading before heating
    assert ("w", b"\x32") in chip.log
    assert len(chip.heater_pulses) == 1
    with pytest.raises(DataNotReady):
        driver.read()  # die still warm
    time.sleep(0.06)
    assert driver.read()[0].value == pytest.approx(12.0, abs=0.002)
    assert len(chip.heater_pulses) == 1  # a second pulse would break the 10 % duty limit


def test_heater_stays_off_in_dry_air_and_by_default() -> None:
    chip, driver = rig(Sht4xOptions(heater="20mw_100ms"), humidity=40.0)
    driver.read()
    chip_default, default = rig(humidity=99.0)
    default.read()
    assert chip.heater_pulses == [] and chip_default.heater_pulses == []


# -- the emulator's own protocol enforcement ------------------------------------------

def test_emulator_nacks_unknown_and_long_commands() -> None:
    _, device = on_bus(Sht4xDevice(), ADDRESS)
    with pytest.raises(NackError):
        device.write(b"\x42")  # unknown command
    with pytest.raises(NackError):
        device.write(b"\xfd\x00")  # no SHT4x command takes an argument


def test_registered_and_matches_profile() -> None:
    assert registry()["sht4x"].driver_type is Sht4x
    profile = all_profiles()["sht4x"]
    assert tuple(q.name for q in profile.quantities) == Sht4x.quantities
    assert (profile.address, profile.alt_addresses) == (0x44, (0x45, 0x46))
    assert isinstance(emulator_registry()["sht4x"].factory(), Sht4xDevice)
