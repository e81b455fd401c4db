"""PCB Artists decibel meter: register encodings, history Leq, the driver against the emulator.

A fake clock drives the emulator and ``time.sleep``: the 1 s settle and Tavg periods
are honoured exactly but take no time.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.bus.i2c import I2CDevice
from agent.config.profiles import all_profiles
from agent.emulators import registry as emulator_registry
from agent.emulators.i2c_bus import EmulatedI2CBus
from agent.emulators.pcba_dbm import ADDRESS, PcbaDbmDevice
from agent.errors import DataNotReady, SensorError
from agent.models import Reading
from agent.sensors import registry
from agent.sensors.base import BusKind, Identifiable, SensorDriver
from agent.sensors.pcba_dbm import (
    REG_DECIBEL,
    PcbaDbm,
    PcbaDbmOptions,
    encode_control,
    encode_tavg,
    history_leq,
    parse_device_id,
    parse_level,
    parse_version,
)
from tests.clock import FakeClock
from tests.sensors.rigs import on_bus, written


def rig(clock: FakeClock, options: PcbaDbmOptions | None = None, **device_kwargs: object):
    device = PcbaDbmDevice(clock=clock, **device_kwargs)  # type: ignore[arg-type]
    bus, i2c = on_bus(device, ADDRESS, clock)
    return bus, device, PcbaDbm(i2c, options or PcbaDbmOptions())


# --- register encodings (programming manual) ----------------------------------------

def test_register_encodings() -> None:
    assert parse_version(0x31) == (3, 1) and parse_version(0x81) == (8, 1)
    assert parse_device_id(bytes.fromhex("1A2B3C4D")) == 0x1A2B3C4D
    assert encode_control("A") == 0x02  # the power-up default: A-weighting, no interrupts
    assert encode_control("C") == 0x04 and encode_control("Z") == 0x00
    assert encode_control("A", power_down=True) == 0x03
    assert encode_tavg(1000) == bytes.fromhex("03E8")  # defaults TAVG_HIGH 0x03, LOW 0xE8
    assert encode_tavg(125) == bytes.fromhex("007D")  # fast mode: write 07 00, then 08 7D
    for bad in (9, 10_001):
        with pytest.raises(ValueError):
            encode_tavg(bad)
    assert parse_level(0x37) == 55 and parse_level(0) is None  # 0 means invalid


def test_history_leq_is_the_energy_mean_of_valid_entries() -> None:
    assert history_leq(bytes(100)) is None
    leq, used = history_leq(bytes([60, 70]) + bytes(98))  # type: ignore[misc]
    assert used == 2 and leq == pytest.approx(67.4036, abs=1e-4)
    assert history_leq(bytes([50, 0, 50])) == (pytest.approx(50.0), 2)


@given(st.lists(st.integers(1, 255), min_size=1, max_size=100))
def test_history_leq_lies_between_min_and_max(levels: list[int]) -> None:
    result = history_leq(bytes(levels) + bytes(100 - len(levels)))
    assert result is not None
    leq, used = result
    assert used == len(levels)
    assert min(levels) - 1e-9 <= leq <= max(levels) + 1e-9
    assert leq >= 10 * math.log10(sum(10 ** (v / 10) for v in levels) / 100)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError):
        PcbaDbmOptions(weighting="B")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PcbaDbmOptions(averaging_ms=5)


def test_registered_and_matches_profile() -> None:
    spec = registry()["pcba_dbm"]
    assert (spec.bus, spec.driver_type, spec.options_type) == (BusKind.I2C, PcbaDbm,
                                                               PcbaDbmOptions)
    profile = all_profiles()["pcba_dbm"]
    assert tuple(q.name for q in profile.quantities) == PcbaDbm.quantities
    assert profile.address == ADDRESS and {q.unit for q in profile.quantities} == {"dB"}
    assert isinstance(emulator_registry()["pcba_dbm"].factory(), PcbaDbmDevice)
    driver = PcbaDbm(I2CDevice(EmulatedI2CBus(), ADDRESS), PcbaDbmOptions())
    assert isinstance(driver, SensorDriver) and isinstance(driver, Identifiable)


# --- the driver against the emulator ----------------------------------------------

def test_start_resets_probes_and_configures(clock: FakeClock) -> None:
    _, device, driver = rig(clock, PcbaDbmOptions(averaging_ms=125))
    driver.start()
    assert written(device) == [
        "09 08",        # system reset
        "00", "01",     # VERSION, ID3..ID0 (register pointers of the reads)
        "05 5a", "05",  # scratch write and read-back
        "06 02",        # CONTROL: A-weighting, interrupts off
        "07 00 7d",     # TAVG 125 ms: high byte, then low byte commits
        "06",           # read back CONTROL, TAVG_HIGH, TAVG_LOW
        "09 06",        # clear history and min/max after settling
    ]
    assert device.tavg_ms == 125
    assert driver.identify() == {"serial": "1a2b3c4d", "hardware": "3", "firmware": "1",
                                 "variant": "MEMS microphone"}


def test_interval_leq_min_max_and_clearing(clock: FakeClock) -> None:
    _, device, driver = rig(clock, level_db=60)
    driver.start()
    clock.now += 30.0
    device.tick()
    device.level_db = 70
    clock.now += 30.0
    readings = driver.read()
    assert [r.quantity for r in readings] == ["laeq", "lamin", "lamax"]
    assert readings[0].value == pytest.approx(10 * math.log10((1e6 + 1e7) / 2), abs=0.1)
    assert (readings[1].value, readings[2].value) == (60.0, 70.0)
    assert device.history == bytes(100)  # cleared for the next interval
    assert device.registers[0x0B] == device.registers[0x0C] == 0
    clock.now += 10.0
    assert driver.read() == [Reading("laeq", 70.0), Reading("lamin", 70.0),
                             Reading("lamax", 70.0)]


def test_random_walk_is_plausible(clock: FakeClock) -> None:
    _, _, driver = rig(clock, seed=4)
    driver.start()
    for _ in range(5):
        clock.now += 60.0
        leq, low, high = (r.value for r in driver.read())
        assert 35 <= low <= leq <= high <= 80


def test_weighting_selects_the_quantities(clock: FakeClock) -> None:
    _, device, driver = rig(clock, PcbaDbmOptions(weighting="C"), level_db=50)
    driver.start()
    assert device.registers[0x06] == 0x04
    clock.now += 5.0
    assert [(r.quantity, r.value) for r in driver.read()] == [
        ("lceq", 53.0), ("lcmin", 53.0), ("lcmax", 53.0)]


def test_not_ready_before_the_first_period_and_when_invalid(clock: FakeClock) -> None:
    bus, device, driver = rig(clock, level_db=50)
    driver.start()
    with pytest.raises(DataNotReady, match="no averaging period"):
        driver.read()  # history just cleared, no Tavg ended yet
    clock.now += 1.0
    assert driver.read()[0].value == 50.0
    I2CDevice(bus, ADDRESS).write_register(0x09, b"\x08")  # another host resets it
    clock.now += 0.5
    with pytest.raises(DataNotReady, match="DECIBEL = 0"):
        driver.read()
    assert device.registers[REG_DECIBEL] == 0


def test_long_interval_fills_the_history(clock: FakeClock, caplog) -> None:
    _, _, driver = rig(clock, level_db=45)
    driver.start()
    clock.now += 150.0
    assert driver.read()[0].value == 45.0
    assert "history full" in caplog.text


def test_tavg_low_alone_commits_the_stale_high_byte(clock: FakeClock) -> None:
    bus, device, _ = rig(clock)
    clock.now += 0.01
    dev = I2CDevice(bus, ADDRESS)
    dev.write_register(0x08, b"\x7d")  # LOW first: HIGH still 0x03 -> 0x037D = 893 ms
    assert device.tavg_ms == 0x037D
    dev.write_register(0x07, b"\x00")
    assert device.tavg_ms == 0x037D  # HIGH alone takes no effect
    dev.write_register(0x08, b"\x7d")
    assert device.tavg_ms == 125
    dev.write_register(0x00, b"\x99")  # read-only VERSION ignores writes
    assert dev.read_register(0x00, 1) == b"\x31"


def test_stop_powers_down_and_start_wakes(clock: FakeClock) -> None:
    _, device, driver = rig(clock, level_db=55)
    driver.start()
    clock.now += 3.0
    driver.stop()
    assert device.powered_down
    samples = device.samples
    clock.now += 30.0
    device.tick()
    assert device.samples == samples  # frozen while powered down
    driver.start()
    assert not device.powered_down
    clock.now += 2.0
    assert driver.read()[0].value == 55.0


def test_wrong_chip_at_0x48_is_refused(clock: FakeClock) -> None:
    bus = EmulatedI2CBus()

    class Ads1115Ish:  # answers, but no scratch register behaviour
        def on_write(self, data: bytes) -> None:
            pass

        def on_read(self, length: int) -> bytes:
            return bytes([0x85, 0x83][:length]).ljust(length, b"\x00")

    bus.attach(ADDRESS, Ads1115Ish())
    driver = PcbaDbm(I2CDevice(bus, ADDRESS), PcbaDbmOptions())
    with pytest.raises(SensorError, match="scratch"):
        driver.start()
