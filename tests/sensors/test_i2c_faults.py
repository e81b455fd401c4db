"""Bus faults, the same for every I2C driver: each against its emulator on a fake clock.

NACK -> NackError, errno 110 -> BusTimeout, a bad CRC -> CrcError counted in
``frames_rejected``, injected not-ready -> DataNotReady with the data kept, and a
device that vanishes (with or without losing power) and returns -> errors while
away, then reset() recovers; each case (``i2c_cases.py``) pins one value, so
"recovers" means the driver reads exactly what the chip holds. Also here: emulators
that NACK traffic while busy or converting. Tests of a driver's own behaviour stay
in its ``test_<model>.py``.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from agent.emulators.pcba_dbm import BOOT_S as PCBA_BOOT_S
from agent.emulators.pcba_dbm import PcbaDbmDevice
from agent.emulators.scd4x import Scd4xDevice
from agent.emulators.scd30 import BOOT_S as SCD30_BOOT_S
from agent.emulators.scd30 import Scd30Device
from agent.emulators.sht3x import Sht3xDevice
from agent.emulators.sht4x import Sht4xDevice
from agent.errors import BusTimeout, CrcError, DataNotReady, NackError
from agent.sensors._sensirion import decode_words
from agent.sensors.scd4x import STOP_S
from tests.clock import FakeClock
from tests.sensors.i2c_cases import CASES, Case, assert_recovered, started
from tests.sensors.rigs import on_bus

CRC_CASES = [case for case in CASES if case.crc]
DATA_READY_CASES = [case for case in CASES if case.name in ("sps30", "sen55", "scd30", "scd40")]
POWER_CYCLED = [case for case in CASES if hasattr(case.device(clock=FakeClock()), "power_cycle")]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_errno_121_is_a_nack_and_110_a_timeout(case: Case, clock: FakeClock) -> None:
    bus, _, driver = started(case, clock)
    bus.fail_next(case.address)
    with pytest.raises(NackError):
        driver.read()
    bus.fail_next(case.address, err=errno.ETIMEDOUT)
    with pytest.raises(BusTimeout):
        driver.read()
    assert_recovered(case, driver.read())


@pytest.mark.parametrize("case", [c for c in CASES if c.name != "bme280"], ids=str)
def test_a_nack_from_the_chip_is_a_nack_error(case: Case, clock: FakeClock) -> None:
    _, device, driver = started(case, clock)
    device.nack_next()
    with pytest.raises(NackError):
        driver.read()


@pytest.mark.parametrize("case", CRC_CASES, ids=str)
def test_bad_crc_is_rejected_counted_and_the_next_read_recovers(case: Case,
                                                                clock: FakeClock) -> None:
    _, device, driver = started(case, clock)
    device.corrupt_next(2)
    for _ in range(2):
        with pytest.raises(CrcError):
            driver.read()
    assert driver.frames_rejected == 2
    assert_recovered(case, driver.read())


@pytest.mark.parametrize("case", DATA_READY_CASES, ids=str)
def test_injected_not_ready_keeps_the_data(case: Case, clock: FakeClock) -> None:
    _, device, driver = started(case, clock)
    device.hold_not_ready()
    with pytest.raises(DataNotReady):
        driver.read()
    assert_recovered(case, driver.read())


@pytest.mark.parametrize("case", DATA_READY_CASES, ids=str)
def test_stuck_not_ready(case: Case, clock: FakeClock) -> None:
    _, device, driver = started(case, clock)
    device.not_ready = True
    for _ in range(2):
        with pytest.raises(DataNotReady):
            driver.read()
    device.not_ready = False
    assert_recovered(case, driver.read())


AWAY = ([pytest.param(case, False, id=case.name) for case in CASES]
        + [pytest.param(case, True, id=f"{case.name}-power-loss") for case in POWER_CYCLED])


@pytest.mark.parametrize(("case", "power_loss"), AWAY)
def test_vanish_then_reappear_recovers_after_reset(case: Case, power_loss: bool,
                                                   clock: FakeClock) -> None:
    bus, device, driver = started(case, clock)
    bus.vanish(case.address)
    with pytest.raises(NackError):
        driver.read()
    with pytest.raises(NackError):
        driver.reset()
    with pytest.raises(NackError):
        driver.start()
    if power_loss:
        device.power_cycle()
    bus.reappear(case.address)
    clock.now += 1.0  # the sampler's next retry: a power-cycled chip has finished booting
    driver.reset()
    clock.now += case.settle_s
    assert_recovered(case, driver.read())


# -- the emulators refuse traffic while busy -----------------------------------------------

@pytest.mark.parametrize(("device", "command", "probe", "busy_s"), [
    pytest.param(Scd30Device, "D304", "D100", SCD30_BOOT_S, id="scd30-soft-reset"),
    pytest.param(partial(Scd4xDevice, variant="scd40"), "3F86", "3682", STOP_S, id="scd40-stop"),
    pytest.param(PcbaDbmDevice, "0908", "00", PCBA_BOOT_S, id="pcba_dbm-system-reset"),
])
def test_chip_is_deaf_while_busy(device: Callable[..., Any], command: str, probe: str,
                                 busy_s: float, clock: FakeClock) -> None:
    _, i2c = on_bus(device(clock=clock), 0x10, clock)
    i2c.write(bytes.fromhex(command))
    with pytest.raises(NackError):
        i2c.write(bytes.fromhex(probe))
    clock.now += busy_s
    i2c.write(bytes.fromhex(probe))


@pytest.mark.parametrize(("device", "command", "conversion_s"), [
    pytest.param(Sht3xDevice, "2400", 0.0125, id="sht3x-high-repeatability"),
    pytest.param(Sht4xDevice, "FD", 0.0069, id="sht4x-high-precision"),
])
def test_read_header_nacked_until_the_conversion_is_done(device: Callable[..., Any],
                                                         command: str, conversion_s: float,
                                                         clock: FakeClock) -> None:
    _, i2c = on_bus(device(clock=clock), 0x44, clock)
    with pytest.raises(NackError):
        i2c.read(6)  # nothing pending
    i2c.write(bytes.fromhex(command))
    clock.now += conversion_s * 0.5
    with pytest.raises(NackError):
        i2c.read(6)
    clock.now += conversion_s
    assert len(decode_words(i2c.read(6))) == 2  # two words, CRCs correct
    with pytest.raises(NackError):
        i2c.read(6)  # the result was consumed
