"""What the SPS30 and the SEN5x share, tested once for both: the same data-ready latch,
fan cleaning, auto-cleaning interval, status register and power-up state.

Their command sets overlap (0x0202, 0x5607, 0x8004, 0xD206, 0xD304) and the drivers
handle those commands alike; what differs stays in ``test_sps30.py`` / ``test_sen5x.py``.
"""

from __future__ import annotations

import logging

import pytest

from agent.bus.i2c import I2CDevice
from agent.emulators._sensirion import MEASURING
from agent.errors import DataNotReady, NackError, SensorError
from tests.clock import FakeClock
from tests.sensors.i2c_cases import PM_CASES, Case, assert_recovered, rig, started

pytestmark = pytest.mark.parametrize("case", PM_CASES, ids=str)


def test_data_ready_latches_once_per_second(case: Case, clock: FakeClock) -> None:
    _, _, driver = rig(case, clock)
    driver.start()
    with pytest.raises(DataNotReady):
        driver.read()
    clock.now += 1.0
    assert driver.read()
    with pytest.raises(DataNotReady):
        driver.read()


def test_fan_cleaning_pauses_new_data(case: Case, clock: FakeClock) -> None:
    _, _, driver = started(case, clock, cleaning_s=10.0)
    driver.fan_cleaning()
    with pytest.raises(DataNotReady):
        driver.read()
    clock.now += 10.0
    assert driver.read()


@pytest.mark.parametrize(("wanted", "held", "frame"), [
    (604800, 3600, "80 04 00 09 09 3A 80 A7"),
    (0, 604800, "80 04 00 00 81 00 00 81"),
])
def test_auto_cleaning_is_written_only_when_it_differs(case: Case, wanted: int, held: int,
                                                       frame: str, clock: FakeClock) -> None:
    _, device, driver = rig(case, clock, case.options(auto_cleaning_interval_s=wanted),
                            auto_cleaning_interval_s=held)
    driver.start()
    assert bytes.fromhex(frame) in device.writes
    assert device.auto_cleaning_interval_s == wanted
    device.writes.clear()
    driver.start()
    assert not [w for w in device.writes if w[:2] == b"\x80\x04" and len(w) > 2]


def test_no_auto_cleaning_option_means_no_access(case: Case, clock: FakeClock) -> None:
    _, device, _ = started(case, clock)
    assert not [w for w in device.writes if w[:2] == b"\x80\x04"]


def test_status_error_raises_until_reset(case: Case, clock: FakeClock) -> None:
    for bit in (4, 5, 6, 7) if case.name == "sen55" else (4, 5):  # fan, laser, RH/T, gas
        _, device, driver = started(case, clock)
        device.status = 1 << bit
        for _ in range(2):  # error flags are sticky
            with pytest.raises(SensorError, match=r"fan|laser|RH/T|VOC"):
                driver.read()
        driver.reset()
        assert device.state == MEASURING
        clock.now += case.settle_s
        readings = driver.read()
        assert len(readings) == len(driver.quantities)
        assert_recovered(case, readings)


def test_fan_speed_warning_only_logs(case: Case, clock: FakeClock,
                                     caplog: pytest.LogCaptureFixture) -> None:
    _, device, driver = started(case, clock)
    device.status = 1 << 21
    with caplog.at_level(logging.WARNING, logger=type(driver).__module__):
        assert len(driver.read()) == len(driver.quantities)
    assert "fan speed" in caplog.text


def test_after_power_loss_no_data_until_started(case: Case, clock: FakeClock) -> None:
    bus, device, driver = started(case, clock)
    bus.vanish(case.address)
    with pytest.raises(NackError):
        driver.read()
    device.power_cycle()
    bus.reappear(case.address)
    with pytest.raises(DataNotReady):
        driver.read()  # powered up idle: no data
    driver.start()
    clock.now += case.settle_s
    assert_recovered(case, driver.read())


def test_emulator_refuses_a_bad_argument_crc_and_unknown_commands(case: Case,
                                                                  clock: FakeClock) -> None:
    bus, device, _ = rig(case, clock)
    raw = I2CDevice(bus, case.address)
    with pytest.raises(NackError):
        raw.write(bytes.fromhex("80 04 00 00 81 0E 10 00"))  # 3600 s, second CRC wrong
    assert device.auto_cleaning_interval_s == 604800
    with pytest.raises(NackError):
        raw.write(b"\xbe\xef")
