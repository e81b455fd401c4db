"""A serial port in memory: an emulated device on a fake clock, no pseudo-terminal.

What :class:`agent.emulators.serial_pty.PtySerialEmulator` does through the kernel,
here in fake time: bytes the host writes reach the device at once, its replies and its
active reports wait in an input buffer, and a read that finds too few bytes lets time
pass in ``STEP_S`` steps, asking the device for what became due, until the port
timeout. The host's reads are what moves the clock, so a listening window of seconds
costs no real time and every test sees the same timeline.
"""

from __future__ import annotations

import math

from agent.bus.serial import SerialLink
from agent.emulators.serial_pty import SerialDevice
from tests.clock import FakeClock

STEP_S = 0.01
"""How finely a waiting read lets time pass (a byte at 9600 bit/s takes about 1 ms)."""


class MemoryPort:
    """A ``SerialLike`` (``serial.Serial``'s part the drivers use) wired to a device."""

    def __init__(self, device: SerialDevice, clock: FakeClock, baudrate: int,
                 timeout: float | None) -> None:
        self.device = device
        self.clock = clock
        self.baudrate = baudrate
        self.timeout = timeout
        self.closed = False
        self._buffer = bytearray()

    def write(self, data: bytes, /) -> int:
        for frame in self.device.receive(data):
            self._buffer += frame
        return len(data)

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes: as soon as there are enough, or what came by the timeout."""
        self._collect()
        deadline = self.clock.now + (math.inf if self.timeout is None else self.timeout)
        while len(self._buffer) < size and self.clock.now < deadline:
            self.clock.sleep(min(STEP_S, deadline - self.clock.now))
            self._collect()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def reset_input_buffer(self) -> None:
        self._collect()
        self._buffer.clear()

    def close(self) -> None:
        self.closed = True

    def _collect(self) -> None:
        for frame in self.device.poll(self.clock.now):
            self._buffer += frame


def memory_link(device: SerialDevice, clock: FakeClock, name: str, baudrate: int,
                timeout_s: float) -> SerialLink:
    """A link as ``agent.bus.serial.open_serial`` returns one, on ``clock``."""
    return SerialLink(MemoryPort(device, clock, baudrate, timeout_s), name, clock)
