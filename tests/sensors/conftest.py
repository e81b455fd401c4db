"""Fixtures shared by the sensor tests: the fake clock, and a serial emulator on a pty."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import agent.sensors.dnms as dnms_module
from agent.bus.serial import SerialLink
from agent.emulators.serial_pty import PtySerialEmulator
from tests.sensors.rigs import FakeClock, serial_link


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A fake clock standing in for ``time.sleep`` (and the DNMS driver's interval clock)."""
    fake = FakeClock()
    monkeypatch.setattr(time, "sleep", fake.sleep)
    monkeypatch.setattr(dnms_module, "_monotonic", fake)
    return fake


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
