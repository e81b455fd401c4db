"""SHT3x: datasheet frames, conversions, and the driver against its emulator byte for byte.

Conversions use the datasheet divisor 2^16 - 1 (not Sensirion's 2^16 shortcut).
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.bus.crc import sensirion_crc8
from agent.bus.i2c import I2CDevice
from agent.config.profiles import all_profiles
from agent.emulators import registry as emulator_registry
from agent.emulators.i2c_bus import EmulatedI2CBus, Nack
from agent.emulators.sht3x import (
    Sht3xDevice,
    make_sht3x,
    sht3x_raw_humidity,
    sht3x_raw_temperature,
)
from agent.errors import FrameError, NackError
from agent.sensors import registry
from agent.sensors.sht3x import (
    STATUS_COMMAND_FAILED,
    STATUS_HEATER_ON,
    STATUS_WRITE_CRC_FAILED,
    Sht3x,
    Sht3xOptions,
    convert_humidity,
    convert_temperature,
    encode_command,
    encode_word,
    parse_measurement,
    parse_serial,
    parse_words,
)
from tests.sensors.rigs import crc_error_of, flipped, on_bus

ADDRESS = 0x44
# Computed example: raw T 0x6666, RH 0x8000 with their CRCs (CRC(0x8000) = 0xA2 per table).
DATASHEET_FRAME = bytes.fromhex("666693 8000A2")


def rig(options: Sht3xOptions | None = None, **emulator_kwargs: object):
    """Driver and chip on real time: the waits are a few ms and the chip logs its traffic."""
    chip = Sht3xDevice(**emulator_kwargs)  # type: ignore[arg-type]
    bus, device = on_bus(chip, ADDRESS)
    return bus, chip, Sht3x(device, options or Sht3xOptions())


# -- pure functions ------------------------------------------------------------------

def test_datasheet_example_frame_decodes_to_25_degrees_50_percent() -> None:
    temperature, humidity = parse_measurement(DATASHEET_FRAME)
    assert temperature == pytest.approx(25.0, abs=1e-4)
    assert humidity == pytest.approx(50.0008, abs=1e-4)


def test_crc_checked_words_and_command_encoding() -> None:
    assert encode_word(0xBEEF) == bytes.fromhex("BEEF92")  # datasheet table 20
    assert parse_words(bytes.fromhex("BEEF92 0000 81".replace(" ", "")), 2) == [0xBEEF, 0]
    assert encode_command(0x2400) == b"\x24\x00"  # high repeatability, no stretching
    assert parse_serial(bytes.fromhex("0B5E") + bytes([sensirion_crc8(b"\x0b\x5e")])
                        + bytes.fromhex("2F01") + bytes([sensirion_crc8(b"\x2f\x01")])) \
        == 0x0B5E2F01


def test_bad_crc_carries_evidence() -> None:
    error = crc_error_of(parse_measurement, flipped(DATASHEET_FRAME, 5))
    assert (error.expected, error.received) == (0xA2, 0xA3)


def test_wrong_length_is_a_frame_error() -> None:
    with pytest.raises(FrameError):
        parse_measurement(DATASHEET_FRAME[:5])


@pytest.mark.parametrize(("raw", "celsius", "percent"),
                         [(0, -45.0, 0.0), (0xFFFF, 130.0, 100.0), (0x8000, 42.5013, 50.0008)])
def test_conversions_at_range_ends(raw: int, celsius: float, percent: float) -> None:
    assert convert_temperature(raw) == pytest.approx(celsius, abs=1e-4)
    assert convert_humidity(raw) == pytest.approx(percent, abs=1e-4)


@given(st.integers(0, 0xFFFF))
def test_raw_to_physical_to_raw_round_trip(raw: int) -> None:
    assert sht3x_raw_temperature(convert_temperature(raw)) == raw
    assert sht3x_raw_humidity(convert_humidity(raw)) == raw


def test_options_reject_unknown_repeatability() -> None:
    with pytest.raises(ValueError, match="repeatability"):
        Sht3xOptions(repeatability="ultra")  # type: ignore[arg-type]


# -- driver against the emulator -----------------------------------------------------

def test_driver_talks_byte_for_byte() -> None:
    _, chip, driver = rig(temperature=25.0, humidity=50.0008)
    driver.start()
    readings = driver.read()
    assert chip.log == [
        ("w", b"\x30\xa2"),  # soft reset
        ("w", b"\x30\x41"),  # clear status
        ("w", b"\x30\x66"),  # heater off
        ("w", b"\x24\x00"),  # single shot, high repeatability, no clock stretching
        ("r", DATASHEET_FRAME),
    ]
    assert [r.quantity for r in readings] == list(Sht3x.quantities)
    assert readings[0].value == pytest.approx(25.0, abs=0.003)
    assert readings[1].value == pytest.approx(50.0008, abs=0.002)


@pytest.mark.parametrize(("repeatability", "code"),
                         [("medium", b"\x24\x0b"), ("low", b"\x24\x16")])
def test_repeatability_selects_the_command(repeatability: str, code: bytes) -> None:
    _, chip, driver = rig(Sht3xOptions(repeatability=repeatability))  # type: ignore[arg-type]
    driver.read()
    assert chip.log[0] == ("w", code)


def test_heater_option_switches_the_heater_and_status_shows_it() -> None:
    _, chip, driver = rig(Sht3xOptions(heater=True))
    driver.start()
    assert chip.heater
    assert driver.read_status() & STATUS_HEATER_ON
    driver.stop()
    assert not chip.heater


def test_identify_reports_serial_without_changing_settings() -> None:
    _, chip, driver = rig(Sht3xOptions(heater=True), serial=0xDEADBEEF)
    driver.start()
    facts = driver.identify()
    assert facts["serial"] == "deadbeef"
    assert int(facts["status"], 16) & STATUS_HEATER_ON
    assert chip.heater


def test_values_drift_slowly_when_not_pinned() -> None:
    _, _, driver = rig()
    first, second = driver.read(), driver.read()
    assert first != second
    assert abs(first[0].value - second[0].value) < 0.5


# -- the emulator's own protocol enforcement ------------------------------------------

def test_unknown_command_is_nacked_and_flagged_in_status() -> None:
    chip = make_sht3x()
    _, device = on_bus(chip, ADDRESS)
    with pytest.raises(NackError):
        device.write(b"\x12\x34")
    assert chip.status & STATUS_COMMAND_FAILED
    with pytest.raises(NackError):
        device.write(b"\x24\x00\x00")  # a measurement takes no argument


def test_argument_with_bad_crc_is_rejected_and_good_one_accepted() -> None:
    chip = make_sht3x()
    _, device = on_bus(chip, ADDRESS)
    with pytest.raises(NackError):
        device.write(b"\x61\x1d\xbe\xef\x00")  # write high alert limit, wrong CRC
    assert chip.status & STATUS_WRITE_CRC_FAILED
    device.write(b"\x61\x1d" + encode_word(0xBEEF))
    assert not chip.status & STATUS_WRITE_CRC_FAILED
    device.write(encode_command(0xE11F))  # read it back
    assert parse_words(device.read(3), 1) == [0xBEEF]


# -- registration and profile --------------------------------------------------------

def test_registered_and_matches_profile() -> None:
    spec = registry()["sht3x"]
    assert spec.driver_type is Sht3x
    assert spec.options_type is Sht3xOptions
    profile = all_profiles()["sht3x"]
    assert tuple(q.name for q in profile.quantities) == Sht3x.quantities
    assert profile.address == ADDRESS
    assert isinstance(emulator_registry()["sht3x"].factory(), Sht3xDevice)


def test_serial_number_falls_back_to_the_clock_stretching_command() -> None:
    """0x3682 (no stretching) first; a chip that refuses it is asked with 0x3780."""

    class OldChip(Sht3xDevice):
        def on_write(self, data: bytes) -> None:
            if data[:2] == b"\x36\x82":
                raise Nack
            super().on_write(data)

    for device in (Sht3xDevice(serial=0x12345678), OldChip(serial=0x12345678)):
        bus = EmulatedI2CBus()
        bus.attach(0x44, device)
        assert Sht3x(I2CDevice(bus, 0x44), Sht3xOptions()).identify()["serial"] == "12345678"
