"""Serial ports through pyserial, with its errors translated once."""

from __future__ import annotations

import contextlib
import termios
from typing import Protocol

import serial

from agent.clock import SYSTEM, Clock
from agent.errors import BusError, BusTimeout

# pyserial lets termios.error (not an OSError) escape from a port whose device vanished.
_PORT_ERRORS = (serial.SerialException, OSError, termios.error)


class SerialLike(Protocol):
    """The part of ``serial.Serial`` the drivers use."""

    timeout: float | None

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


class SerialLink:
    """A pyserial-compatible port with exact-length reads and typed errors.

    ``clock`` is the link's time: drivers measure reply deadlines and wait protocol
    pauses on it (as on :class:`agent.bus.i2c.I2CDevice`), so tests can drive it.
    """

    def __init__(self, port: SerialLike, name: str, clock: Clock = SYSTEM) -> None:
        self.port = port
        self.name = name
        self.clock = clock

    @property
    def baudrate(self) -> int | None:
        """The port's bit rate, for protocols whose timing depends on it (Modbus RTU gaps)."""
        baud = getattr(self.port, "baudrate", None)
        return baud if isinstance(baud, int) and baud > 0 else None

    def write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except _PORT_ERRORS as exc:
            raise BusError(f"{self.name}: write failed: {exc}") from exc

    def read_exact(self, length: int) -> bytes:
        """Read exactly ``length`` bytes or raise :class:`BusTimeout` with what came."""
        data = self.read_some(length)
        if len(data) < length:
            raise BusTimeout(f"{self.name}: wanted {length} bytes, got {len(data)}", raw=data)
        return data

    def read_some(self, length: int) -> bytes:
        """Read up to ``length`` bytes within the port timeout."""
        try:
            return self.port.read(length)
        except _PORT_ERRORS as exc:
            raise BusError(f"{self.name}: read failed: {exc}") from exc

    def discard_input(self) -> None:
        """Drop stale bytes (e.g. active-mode frames) before a request/response exchange."""
        try:
            self.port.reset_input_buffer()
        except _PORT_ERRORS as exc:
            raise BusError(f"{self.name}: flush failed: {exc}") from exc

    def close(self) -> None:
        # Closing a vanished port fails; that is not an error worth reporting.
        with contextlib.suppress(*_PORT_ERRORS):
            self.port.close()


def open_serial(port: str, baudrate: int, timeout_s: float,
                clock: Clock = SYSTEM) -> SerialLink:
    """Open a real port (8N1) or raise :class:`BusError` naming it."""
    try:
        handle = serial.Serial(port=port, baudrate=baudrate, timeout=timeout_s,
                               write_timeout=timeout_s)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise BusError(f"{port}: cannot open: {exc}") from exc
    return SerialLink(handle, port, clock)
