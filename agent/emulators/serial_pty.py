"""Serial devices emulated behind a pseudo-terminal that pyserial opens like hardware.

The emulator owns the pty master; the driver opens :attr:`PtySerialEmulator.port`
(a stable symlink to the pty slave, like ``/dev/serial/by-id/...``) with plain
pyserial. A thread feeds host bytes to the device model and writes its answers
back, applying any queued faults to outgoing frames.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import tempfile
import threading
import time
import tty
from collections import deque
from enum import StrEnum
from pathlib import Path
from typing import Protocol, Self

log = logging.getLogger(__name__)


class SerialDevice(Protocol):
    """A device model's side of a serial line: bytes in, frames out."""

    def receive(self, data: bytes) -> list[bytes]:
        """Consume bytes from the host; return the frames to send in reply."""

    def poll(self, now: float) -> list[bytes]:
        """Return unsolicited frames due at monotonic time ``now`` (active reporting)."""

    def corrupt(self, frame: bytes) -> bytes:
        """Return ``frame`` with a checksum that no longer matches."""


class Fault(StrEnum):
    """Faults applied to the device's next outgoing frames."""

    BAD_CHECKSUM = "bad_checksum"
    TRUNCATED = "truncated"
    GARBAGE = "garbage"
    """Random-looking bytes sent before the frame (the frame itself is intact)."""
    SILENCE = "silence"
    """The frame is swallowed: the host sees a timeout."""


_GARBAGE = bytes([0x13, 0x00, 0xFF, 0x42, 0xAA, 0x07, 0xAB, 0x5A])


def apply_fault(device: SerialDevice, frame: bytes, fault: Fault | None) -> bytes | None:
    """What the line carries of ``frame`` under ``fault``; None when it is swallowed."""
    match fault:
        case Fault.BAD_CHECKSUM:
            return device.corrupt(frame)
        case Fault.TRUNCATED:
            return frame[: len(frame) // 2]
        case Fault.GARBAGE:
            return _GARBAGE + frame
        case Fault.SILENCE:
            return None
    return frame


class PtySerialEmulator:
    """Runs a :class:`SerialDevice` on a pseudo-terminal until :meth:`close`.

    :meth:`vanish` closes the pty and removes the symlink, as when a USB
    adapter is unplugged; :meth:`reappear` creates a fresh pty behind the same
    symlink, so a driver that reopens its port by name finds the device again.
    """

    def __init__(self, device: SerialDevice, link_dir: Path | None = None,
                 name: str = "ttyEMU0") -> None:
        self.device = device
        self._link_dir = Path(link_dir or tempfile.mkdtemp(prefix="lokaalmeten-pty-"))
        self.port = str(self._link_dir / name)
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._master: int | None = None
        self._slave: int | None = None
        self._thread: threading.Thread | None = None
        self.frames_sent = 0
        self.bytes_received = 0

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        self._open_pty()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"emu-{Path(self.port).name}",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._close_pty()

    def inject(self, fault: Fault, count: int = 1) -> None:
        """Apply ``fault`` to each of the next ``count`` outgoing frames."""
        with self._lock:
            self._faults.extend([fault] * count)

    def send_raw(self, data: bytes) -> None:
        """Write arbitrary bytes to the host (line noise, partial frames)."""
        with self._lock:
            if self._master is not None:
                os.write(self._master, data)

    def vanish(self) -> None:
        """Unplug: the port disappears and the host's handle starts failing."""
        with self._lock:
            self._close_pty()

    def reappear(self) -> None:
        """Plug back in behind the same port name."""
        with self._lock:
            self._open_pty()

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo or line discipline, as a real UART
        self._master, self._slave = master, slave
        link = Path(self.port)
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(os.ttyname(slave))

    def _close_pty(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            Path(self.port).unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    def _run(self) -> None:
        while not self._stop.is_set():
            master = self._master
            if master is None:
                time.sleep(0.02)
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.02)
                incoming = os.read(master, 4096) if ready else b""
            except OSError:
                time.sleep(0.02)  # pty closed under us by vanish(); wait for reappear()
                continue
            frames: list[bytes] = []
            if incoming:
                self.bytes_received += len(incoming)
                frames.extend(self.device.receive(incoming))
            frames.extend(self.device.poll(time.monotonic()))
            for frame in frames:
                self._send(frame)

    def _send(self, frame: bytes) -> None:
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            if self._master is None:
                return
            sent = apply_fault(self.device, frame, fault)
            if sent is None:
                return
            # Counted before the write: the reader may hold the frame before this thread
            # runs again, and a test comparing the count with what it read must not race.
            self.frames_sent += 1
            try:
                os.write(self._master, sent)
            except OSError as exc:
                self.frames_sent -= 1
                log.debug("emulator write failed: %s", exc)
