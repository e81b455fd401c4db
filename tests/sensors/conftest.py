"""Fixtures shared by the sensor tests: a fake clock, and a serial device on a line.

A serial test runs twice: on a line in memory on the fake clock (``tests/memory_serial.py``:
reply timeouts and report intervals cost no real time) and, marked slow, through real
pyserial on a pseudo-terminal. A test of what only a real port does (unplugging) asks
for ``@pytest.mark.parametrize("line", ["pty"], indirect=True)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agent.bus.serial import SerialLink
from agent.clock import SYSTEM
from agent.emulators.serial_pty import PtySerialEmulator
from tests.clock import FakeClock
from tests.memory_serial import MemoryLine
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


@pytest.fixture(params=["memory", pytest.param("pty", marks=pytest.mark.slow)])
def line(request: pytest.FixtureRequest) -> str:
    """Which serial line the device is on: ``memory`` or ``pty``."""
    return str(request.param)


@pytest.fixture
def line_clock(line: str, clock: FakeClock) -> Callable[[], float]:
    """The time a serial device lives in: the fake clock in memory, the real one on a pty."""
    return clock if line == "memory" else SYSTEM.monotonic


@pytest.fixture
def pause(line: str, clock: FakeClock) -> Callable[[float], None]:
    """Let time pass on the line while the host does nothing."""
    return clock.sleep if line == "memory" else time.sleep


@pytest.fixture
def emu(line: str, device: Any, clock: FakeClock) -> Iterator[PtySerialEmulator | MemoryLine]:
    """The module's ``device`` fixture on the line."""
    if line == "memory":
        yield MemoryLine(device, clock)
        return
    with PtySerialEmulator(device) as emulator:
        yield emulator


@pytest.fixture
def link(emu: PtySerialEmulator | MemoryLine, baud: int) -> Iterator[SerialLink]:
    """The host side: the line's port in memory, or real pyserial on the emulator's."""
    if isinstance(emu, MemoryLine):
        yield emu.open(baud, 0.1)
        return
    with serial_link(emu.port, baud) as handle:
        yield handle
