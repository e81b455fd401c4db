"""Fixtures shared by the sensor tests: a fake clock, and a serial emulator on a pty."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agent.bus.serial import SerialLink
from agent.emulators.serial_pty import PtySerialEmulator
from tests.clock import FakeClock
from tests.sensors.rigs import serial_link


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock for the emulator and the driver's bus (``rigs.on_bus``): datasheet
    waits are honoured exactly but cost no time."""
    return FakeClock()


@pytest.fixture
def sleeps(clock: FakeClock) -> list[float]:
    """The datasheet waits the driver asked for, in order."""
    return clock.slept


@pytest.fixture
def baud() -> int:
    """Line speed of the serial ``link``; a module overrides it for its device."""
    return 9600


@pytest.fixture
def emu(device: Any) -> Iterator[PtySerialEmulator]:
    """The module's ``device`` fixture behind a pseudo-terminal."""
    with PtySerialEmulator(device) as emulator:
        yield emulator


@pytest.fixture
def link(emu: PtySerialEmulator, baud: int) -> Iterator[SerialLink]:
    """The host side: real pyserial on the emulator's port."""
    with serial_link(emu.port, baud) as handle:
        yield handle
