"""A serial line in memory: an emulated device on a fake clock, no pseudo-terminal.

What :class:`agent.emulators.serial_pty.PtySerialEmulator` does through the kernel,
here in fake time: bytes the host writes reach the device at once, its replies and its
active reports wait in the line's input buffer (with any injected fault applied, as the
emulator applies it), and a read that finds too few bytes lets time pass in ``STEP_S``
steps, asking the device for what became due, until the port timeout. The host's reads
are what moves the clock, so a listening window or a reply timeout of seconds costs no
real time and every test sees the same timeline. A port cannot vanish here: unplugging
is the pseudo-terminal's to test.
"""

from __future__ import annotations

import math
from collections import deque

from agent.bus.serial import SerialLink
from agent.emulators.serial_pty import Fault, SerialDevice, apply_fault
from tests.clock import FakeClock

STEP_S = 0.01
"""How finely a waiting read lets time pass (a byte at 9600 bit/s takes about 1 ms)."""


class MemoryLine:
    """A device on a line, with the emulator's test surface: ``device`` (replaceable),
    ``port``, :meth:`inject`, :meth:`send_raw`, ``frames_sent``, ``bytes_received``."""

    def __init__(self, device: SerialDevice, clock: FakeClock, port: str = "ttyMEM0") -> None:
        self.device = device
        self.clock = clock
        self.port = port
        self.frames_sent = 0
        self.bytes_received = 0
        self._faults: deque[Fault] = deque()
        self._buffer = bytearray()
        """Bytes sent to the host and not read yet."""

    def inject(self, fault: Fault, count: int = 1) -> None:
        """Apply ``fault`` to each of the next ``count`` outgoing frames."""
        self._faults.extend([fault] * count)

    def send_raw(self, data: bytes) -> None:
        """Write arbitrary bytes to the host (line noise, partial frames)."""
        self._buffer += data

    def open(self, baudrate: int, timeout_s: float) -> SerialLink:
        """The host's side, as ``agent.bus.serial.open_serial`` returns it, on the clock."""
        return SerialLink(MemoryPort(self, baudrate, timeout_s), self.port, self.clock)

    def host_wrote(self, data: bytes) -> None:
        self.bytes_received += len(data)
        self._send(self.device.receive(data))

    def host_read(self, size: int, timeout: float | None) -> bytes:
        """Up to ``size`` bytes: as soon as there are enough, or what came by the timeout."""
        self._send(self.device.poll(self.clock.now))
        deadline = self.clock.now + (math.inf if timeout is None else timeout)
        while len(self._buffer) < size and self.clock.now < deadline:
            self.clock.sleep(min(STEP_S, deadline - self.clock.now))
            self._send(self.device.poll(self.clock.now))
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def host_flushed(self) -> None:
        self._send(self.device.poll(self.clock.now))
        self._buffer.clear()

    def _send(self, frames: list[bytes]) -> None:
        for frame in frames:
            sent = apply_fault(self.device, frame, self._faults.popleft() if self._faults
                               else None)
            if sent is not None:
                self.frames_sent += 1
                self._buffer += sent


class MemoryPort:
    """A ``SerialLike`` (the part of ``serial.Serial`` the drivers use) on a line."""

    def __init__(self, line: MemoryLine, baudrate: int, timeout: float | None) -> None:
        self.line = line
        self.baudrate = baudrate
        self.timeout = timeout

    def write(self, data: bytes, /) -> int:
        self.line.host_wrote(data)
        return len(data)

    def read(self, size: int = 1) -> bytes:
        return self.line.host_read(size, self.timeout)

    def reset_input_buffer(self) -> None:
        self.line.host_flushed()

    def close(self) -> None:
        """Nothing to release: the line stays, as a device stays on its port."""
