"""Rigs shared by the sensor tests: an emulated chip on an I2C bus, a serial
link to an emulator's pty, and the check that a bad checksum is reported with its evidence.

The fixtures built from them live in ``conftest.py``; this module holds the plain
classes and functions that test modules import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from agent.bus.i2c import I2CDevice
from agent.bus.serial import SerialLink, open_serial
from agent.clock import SYSTEM, Clock
from agent.emulators.i2c_bus import EmulatedI2CBus
from agent.errors import CrcError


def on_bus(device: Any, address: int,
           clock: Clock = SYSTEM) -> tuple[EmulatedI2CBus, I2CDevice]:
    """A bus with ``device`` attached at ``address``, and the host's handle to it, whose
    datasheet waits pass on ``clock`` (the test's :class:`tests.clock.FakeClock`)."""
    bus = EmulatedI2CBus()
    bus.attach(address, device)
    return bus, I2CDevice(bus, address, clock=clock)


def written(device: Any) -> list[str]:
    """Every write a device saw (accepted or refused), as hex strings."""
    return [data.hex(" ") for kind, data in device.log if kind == "w"]


@contextmanager
def serial_link(port: str, baud: int, timeout_s: float = 0.1) -> Iterator[SerialLink]:
    """Real pyserial on an emulator's port, closed again afterwards."""
    handle = open_serial(port, baud, timeout_s)
    try:
        yield handle
    finally:
        handle.close()


def flipped(frame: bytes, index: int, mask: int = 0x01) -> bytes:
    """``frame`` with bits of one byte flipped (a checksum that no longer matches)."""
    broken = bytearray(frame)
    broken[index] ^= mask
    return bytes(broken)


def crc_error_of(parse: Callable[[bytes], object], frame: bytes) -> CrcError:
    """The CrcError ``parse`` raises for ``frame``, checked to carry the frame as evidence."""
    with pytest.raises(CrcError) as info:
        parse(frame)
    assert info.value.raw == frame
    return info.value
