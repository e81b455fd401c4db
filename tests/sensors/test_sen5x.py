"""SEN50/SEN54/SEN55 (I2C): scalings and sentinels, then driver <-> emulator per model."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

import agent.sensors._sensirion as sensirion_mod
import agent.sensors.sen5x as sen5x_mod
from agent.bus.i2c import I2CDevice
from agent.config.profiles import all_profiles
from agent.emulators import registry as emulator_registry
from agent.emulators._sensirion import IDLE
from agent.emulators.i2c_bus import EmulatedI2CBus
from agent.emulators.sen5x import Sen5xDevice
from agent.errors import DataNotReady, NackError
from agent.models import Quality
from agent.sensors import registry
from agent.sensors.sen5x import (
    Sen5x,
    Sen5xOptions,
    Sen50,
    Sen54,
    Sen55,
    encode_measured_values,
    encode_temperature_offset,
    parse_data_ready,
    parse_measured_values,
    parse_temperature_offset,
)
from tests.clock import FakeClock
from tests.sensors.rigs import on_bus

ADDRESS = 0x69
DRIVERS: dict[str, type[Sen5x]] = {"sen50": Sen50, "sen54": Sen54, "sen55": Sen55}

# PM 12.3/15.6/17.0/18.1, RH 45.67 %, T 23.45 degC, VOC 100.0, NOx 1.0 (sensor-protocols.md §5).
FRAME = bytes.fromhex(
    "00 7B 93 00 9C C5 00 AA A6 00 B5 CB 11 D7 88 12 52 2A 03 E8 D4 00 0A 5A")
FRAME_VALUES = {"pm1_0": 12.3, "pm2_5": 15.6, "pm4_0": 17.0, "pm10": 18.1,
                "relative_humidity": 45.67, "temperature": 23.45, "voc_index": 100.0,
                "nox_index": 1.0}
ALL_UNKNOWN = bytes.fromhex("FF FF AC" * 4 + "7F FF 8F" * 4)


def rig(clock: FakeClock, model: str = "sen55", options: Sen5xOptions | None = None,
        device_model: str | None = None,
        **device_kwargs: object) -> tuple[Sen5x, Sen5xDevice, EmulatedI2CBus]:
    device = Sen5xDevice(device_model or model, clock=clock, **device_kwargs)  # type: ignore[arg-type]
    bus, i2c = on_bus(device, ADDRESS, clock)
    return DRIVERS[model](i2c, options or Sen5xOptions()), device, bus


def started(clock: FakeClock, model: str = "sen55", options: Sen5xOptions | None = None,
            **device_kwargs: object) -> tuple[Sen5x, Sen5xDevice, EmulatedI2CBus]:
    driver, device, bus = rig(clock, model, options, **device_kwargs)
    driver.start()
    clock.now += 11.0  # past the first sample and the NOx start-up
    return driver, device, bus


# --- pure scalings and sentinels -------------------------------------------------------------
def test_measured_values_frame_decodes() -> None:
    assert parse_measured_values(FRAME) == pytest.approx(FRAME_VALUES)
    assert encode_measured_values(FRAME_VALUES) == FRAME


def test_all_unknown_frame_yields_nothing() -> None:
    assert parse_measured_values(ALL_UNKNOWN) == {}
    assert encode_measured_values({}) == ALL_UNKNOWN


def test_negative_temperature_is_signed() -> None:
    frame = encode_measured_values({"temperature": -5.0})
    assert frame[15:18] == bytes.fromhex("FC 18 D7")
    assert parse_measured_values(frame) == {"temperature": -5.0}


def test_data_ready_flag_is_the_low_byte() -> None:
    assert parse_data_ready(bytes.fromhex("00 01 B0")) is True
    assert parse_data_ready(bytes.fromhex("00 00 81")) is False


def test_temperature_offset_round_trip() -> None:
    frame = encode_temperature_offset(-1.5, 0.01, 300)
    assert frame[:2] == b"\x60\xb2"
    assert parse_temperature_offset(frame[2:]) == (-1.5, 0.01, 300)


OPTIONAL_U = st.one_of(st.none(), st.integers(0, 0xFFFE))
OPTIONAL_I = st.one_of(st.none(), st.integers(-0x8000, 0x7FFE))


@given(st.lists(OPTIONAL_U, min_size=4, max_size=4), st.lists(OPTIONAL_I, min_size=4, max_size=4))
def test_scalings_round_trip_over_the_full_range(pm: list[int | None],
                                                 rest: list[int | None]) -> None:
    scales = [10, 10, 10, 10, 100, 200, 10, 10]
    names = [name for name, _, _ in sen5x_mod._FIELDS]
    ticks = [*pm, *rest]
    values = {n: t / s for n, t, s in zip(names, ticks, scales, strict=True) if t is not None}
    assert parse_measured_values(encode_measured_values(values)) == pytest.approx(values)


# --- driver against the emulator -------------------------------------------------------------
@pytest.mark.parametrize("model", ["sen50", "sen54", "sen55"])
def test_each_model_reports_exactly_its_quantities(clock: FakeClock,
                                                   model: str) -> None:
    driver, device, _ = started(clock, model)
    assert device.writes[-1] == b"\x00\x21"
    readings = driver.read()
    assert tuple(r.quantity for r in readings) == DRIVERS[model].quantities
    v = {r.quantity: r.value for r in readings}
    assert 0 < v["pm1_0"] <= v["pm2_5"] <= v["pm4_0"] <= v["pm10"] < 1000
    if model != "sen50":
        assert 0 <= v["relative_humidity"] <= 100
        assert -10 <= v["temperature"] <= 50
        assert 1 <= v["voc_index"] <= 500


def test_end_to_end_frame_is_byte_for_byte(clock: FakeClock) -> None:
    driver, _, bus = started(clock, values=FRAME_VALUES)
    assert {r.quantity: r.value for r in driver.read()} == pytest.approx(FRAME_VALUES)
    raw = I2CDevice(bus, ADDRESS)
    raw.write(b"\x03\xc4")
    assert raw.read(24) == FRAME


def test_nox_index_is_missing_during_start_up(clock: FakeClock) -> None:
    driver, _, _ = rig(clock, nox_startup_s=10.0)
    driver.start()
    clock.now += 1.0
    first = {r.quantity for r in driver.read()}
    assert "nox_index" not in first
    assert "voc_index" in first
    clock.now += 10.0
    assert "nox_index" in {r.quantity for r in driver.read()}


def test_unknown_values_are_omitted_not_published(clock: FakeClock) -> None:
    driver, _, _ = started(clock, values={"voc_index": None})
    assert "voc_index" not in {r.quantity for r in driver.read()}


def test_nothing_known_is_not_ready(clock: FakeClock) -> None:
    nothing = dict.fromkeys(FRAME_VALUES)
    driver, _, _ = started(clock, values=nothing)
    with pytest.raises(DataNotReady, match="unknown"):
        driver.read()


def test_high_humidity_flags_the_pm_values(clock: FakeClock) -> None:
    driver, _, _ = started(clock, values={"relative_humidity": 95.0})
    flagged = {r.quantity for r in driver.read() if Quality.HIGH_HUMIDITY in r.flags}
    assert flagged == {"pm1_0", "pm2_5", "pm4_0", "pm10"}


def test_start_waits_the_datasheet_delays(clock: FakeClock, sleeps: list[float]) -> None:
    rig(clock)[0].start()
    assert sleeps[0] == 0.200  # stop
    assert sleeps[-1] == 0.050  # start


def test_temperature_offset_written_once(clock: FakeClock) -> None:
    options = Sen5xOptions(temperature_offset_c=-1.5, temperature_offset_time_constant_s=60)
    driver, device, _ = rig(clock, options=options)
    driver.start()
    assert device.temperature_offset == ((-300) & 0xFFFF, 0, 60)
    device.writes.clear()
    driver.start()
    assert not [w for w in device.writes if w[:2] == b"\x60\xb2" and len(w) > 2]


def test_temperature_offset_shifts_the_reading(clock: FakeClock) -> None:
    plain, _, _ = started(clock, seed=7)
    shifted, _, _ = started(clock, options=Sen5xOptions(temperature_offset_c=-2.0), seed=7)
    t_plain = {r.quantity: r.value for r in plain.read()}["temperature"]
    t_shifted = {r.quantity: r.value for r in shifted.read()}["temperature"]
    assert t_shifted == pytest.approx(t_plain - 2.0, abs=0.01)


def test_sen50_ignores_the_temperature_offset(clock: FakeClock) -> None:
    driver, device, _ = rig(clock, "sen50", Sen5xOptions(temperature_offset_c=-1.0))
    driver.start()
    assert not [w for w in device.writes if w[:2] == b"\x60\xb2"]


def test_identify(clock: FakeClock) -> None:
    driver, _, _ = rig(clock, "sen54", serial="0123456789ABCDEF", firmware=(2, 1))
    assert driver.identify() == {"product": "SEN54", "serial": "0123456789ABCDEF",
                                 "firmware": "2.1", "hardware": "4.0"}


def test_model_mismatch_is_logged(clock: FakeClock,
                                  caplog: pytest.LogCaptureFixture) -> None:
    driver, _, _ = rig(clock, "sen55", device_model="sen54")
    with caplog.at_level(logging.WARNING, logger="agent.sensors.sen5x"):
        driver.start()
    assert "SEN54" in caplog.text
    clock.now += 20.0
    assert "nox_index" not in {r.quantity for r in driver.read()}


def test_stop_returns_to_idle(clock: FakeClock) -> None:
    driver, device, _ = started(clock)
    driver.stop()
    assert device.state == IDLE


# --- the emulator's own protocol checks -------------------------------------------------------
def test_emulator_rejects_a_temperature_offset_with_a_bad_argument_crc(clock: FakeClock) -> None:
    _, device, bus = rig(clock)
    raw = I2CDevice(bus, ADDRESS)
    with pytest.raises(NackError):
        raw.write(bytes.fromhex("60 B2 FE D4 00 00 00 00 00 00 00"))
    assert device.temperature_offset == (0, 0, 0)


def test_emulator_read_and_clear_status(clock: FakeClock) -> None:
    _, device, bus = rig(clock)
    device.status = (1 << 4) | (1 << 21)
    raw = I2CDevice(bus, ADDRESS)
    raw.write(b"\xd2\x10")
    assert sensirion_mod.decode_words(raw.read(6)) == [0x0020, 0x0010]
    assert device.status == 1 << 21


# --- registration and profiles --------------------------------------------------------------
@pytest.mark.parametrize("model", ["sen50", "sen54", "sen55"])
def test_registered_and_matching_the_profile(model: str) -> None:
    spec = registry()[model]
    assert spec.driver_type is DRIVERS[model]
    assert spec.options_type is Sen5xOptions
    profile = all_profiles()[model]
    assert tuple(q.name for q in profile.quantities) == DRIVERS[model].quantities
    assert profile.address == ADDRESS
    device = emulator_registry()[model].factory()
    assert isinstance(device, Sen5xDevice)
    assert device.model == model


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="temperature_offset_c"):
        Sen5xOptions(temperature_offset_c=200.0)
    with pytest.raises(ValueError, match="slope"):
        Sen5xOptions(temperature_offset_slope=5.0)
