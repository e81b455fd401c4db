"""Every I2C driver with its emulator, for tests that are the same for all of them.

Each case pins one value, so "the driver works again" can be checked as "it reads
exactly what the chip holds". Used by ``test_i2c_faults.py`` (all drivers) and
``test_sensirion_pm.py`` (the SPS30 and the SEN5x).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest

from agent.emulators.bme280 import Bme280Device
from agent.emulators.dnms import DnmsDevice
from agent.emulators.i2c_bus import EmulatedI2CBus
from agent.emulators.pcba_dbm import PcbaDbmDevice
from agent.emulators.scd4x import Scd4xDevice
from agent.emulators.scd30 import Scd30Device
from agent.emulators.sen5x import Sen5xDevice
from agent.emulators.sht3x import Sht3xDevice
from agent.emulators.sht4x import Sht4xDevice
from agent.emulators.sps30 import Sps30Device
from agent.models import Reading
from agent.sensors.bme280 import Bme280, Bme280Options
from agent.sensors.dnms import Dnms, DnmsOptions
from agent.sensors.pcba_dbm import PcbaDbm, PcbaDbmOptions
from agent.sensors.scd4x import Scd40, Scd40Options, Scd41, Scd41Options
from agent.sensors.scd30 import Scd30, Scd30Options
from agent.sensors.sen5x import Sen5xOptions, Sen55
from agent.sensors.sht3x import Sht3x, Sht3xOptions
from agent.sensors.sht4x import Sht4x, Sht4xOptions
from agent.sensors.sps30 import Sps30, Sps30Options
from tests.clock import FakeClock
from tests.sensors.rigs import on_bus


@dataclass(frozen=True)
class Case:
    """One driver and its emulator, with a pinned first quantity."""

    name: str
    address: int
    device: Callable[..., Any]
    """The emulator class with the pinned value bound; takes ``clock`` and more kwargs."""
    driver: Callable[..., Any]
    options: Callable[..., Any]
    value: float
    """What the first reading must be once the driver works."""
    tolerance: float
    settle_s: float
    """Time from start() or reset() until a new sample can be read."""
    crc: bool = True
    """Whether the protocol has CRCs (and the emulator ``corrupt_next``)."""

    def __str__(self) -> str:
        return self.name


CASES = [
    Case("sht3x", 0x44, partial(Sht3xDevice, temperature=20.0, humidity=40.0),
         Sht3x, Sht3xOptions, 20.0, 0.003, 0.0),
    Case("sht4x", 0x44, partial(Sht4xDevice, temperature=30.0, humidity=20.0),
         Sht4x, Sht4xOptions, 30.0, 0.002, 0.0),
    Case("sps30", 0x69, partial(Sps30Device, values={"pm1_0": 5.0}),
         Sps30, Sps30Options, 5.0, 1e-6, 1.0),
    Case("sen55", 0x69, partial(Sen5xDevice, "sen55", values={"pm1_0": 12.3}),
         Sen55, Sen5xOptions, 12.3, 1e-9, 11.0),  # 11 s: past the NOx index start-up
    Case("scd30", 0x61, partial(Scd30Device, co2_ppm=612.5),
         Scd30, Scd30Options, 612.5, 0.0, 2.0),
    Case("scd40", 0x62, partial(Scd4xDevice, variant="scd40", co2_ppm=530),
         Scd40, Scd40Options, 530.0, 0.0, 5.0),
    Case("scd41", 0x62, partial(Scd4xDevice, variant="scd41", co2_ppm=700),
         Scd41, Scd41Options, 700.0, 0.0, 5.0),
    Case("dnms", 0x55, partial(DnmsDevice, level_db=45.0),
         Dnms, DnmsOptions, 45.0, 0.0, 10.0),
    Case("pcba_dbm", 0x48, partial(PcbaDbmDevice, level_db=48),
         PcbaDbm, PcbaDbmOptions, 48.0, 0.0, 2.0, crc=False),
    Case("bme280", 0x76, partial(Bme280Device, temperature=5.0, pressure=990.0, humidity=80.0),
         Bme280, partial(Bme280Options, timeout_s=0.02), 5.0, 0.011, 0.0, crc=False),
]
PM_CASES = [case for case in CASES if case.name in ("sps30", "sen55")]


def rig(case: Case, clock: FakeClock, options: Any = None,
        **device_kwargs: Any) -> tuple[EmulatedI2CBus, Any, Any]:
    """Bus, emulated chip and driver, not started."""
    device = case.device(clock=clock, **device_kwargs)
    bus, i2c = on_bus(device, case.address, clock)
    return bus, device, case.driver(i2c, options or case.options())


def started(case: Case, clock: FakeClock, options: Any = None,
            **device_kwargs: Any) -> tuple[EmulatedI2CBus, Any, Any]:
    """The driver started on its emulator, a first sample due."""
    bus, device, driver = rig(case, clock, options, **device_kwargs)
    driver.start()
    clock.now += case.settle_s
    return bus, device, driver


def assert_recovered(case: Case, readings: list[Reading]) -> None:
    """The first reading is the value the chip was pinned to."""
    assert readings[0].value == pytest.approx(case.value, abs=case.tolerance)
