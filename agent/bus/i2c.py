"""I2C access through any smbus2-compatible bus object.

Drivers never open a bus: they are given an :class:`I2CDevice`, which wraps a
bus object (``smbus2.SMBus`` on ``/dev/i2c-N``, a USB adapter with the same
interface, or an emulated bus in tests) and one 7-bit address.
"""

from __future__ import annotations

import ctypes
import errno
import threading
from typing import Protocol

from smbus2 import i2c_msg

from agent.clock import SYSTEM, Clock
from agent.errors import BusError, BusTimeout, NackError

_NACK_ERRNOS = {errno.EREMOTEIO, errno.ENXIO, errno.EIO}

_BUFFER_TYPES: dict[int, type[ctypes.Array[ctypes.c_char]]] = {}
"""``c_char * n`` for every message length used, held for the life of the process."""
_MESSAGE_ARRAYS = (i2c_msg * 1, i2c_msg * 2)
"""The ``i2c_msg`` arrays ``SMBus.i2c_rdwr`` builds for one and two messages, held too."""


def read_message(address: int, length: int) -> i2c_msg:
    """``i2c_msg.read`` that leaves no garbage behind (see :func:`_hold_buffer_type`)."""
    _hold_buffer_type(length)
    return i2c_msg.read(address, length)


def write_message(address: int, data: bytes | list[int]) -> i2c_msg:
    """``i2c_msg.write`` that leaves no garbage behind (see :func:`_hold_buffer_type`)."""
    _hold_buffer_type(len(data))
    return i2c_msg.write(address, data)


def _hold_buffer_type(length: int) -> None:
    """Keep the ctypes array type of a ``length``-byte buffer alive.

    Why: smbus2 makes every message's buffer with ``create_string_buffer``, i.e. a
    ``c_char * length`` type, and ``SMBus.i2c_rdwr`` an ``i2c_msg * n`` array type.
    ctypes caches those types by weak reference only, and a type is a cycle (a class
    with its own dict and descriptors, several kB), so once a transfer is done the
    type is garbage: the next collection frees it and the next transfer of that
    length builds it again. On the simulated box (eight I2C sensors) that was some 14
    classes built and freed at every collection of the young generation, heap churn
    for nothing. Held here, the cache finds them: one type per length, for good.
    """
    if length not in _BUFFER_TYPES:
        _BUFFER_TYPES[length] = ctypes.c_char * length


class SMBusLike(Protocol):
    """The part of ``smbus2.SMBus`` the drivers use."""

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None: ...

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int,
                            force: bool | None = None) -> list[int]: ...

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int],
                             force: bool | None = None) -> None: ...

    def close(self) -> None: ...


def translate_os_error(exc: OSError, address: int, action: str) -> BusError:
    """Map a kernel I2C errno onto the agent's error tree."""
    where = f"I2C 0x{address:02x} {action}"
    if exc.errno == errno.ETIMEDOUT:
        return BusTimeout(f"{where}: timed out")
    if exc.errno in _NACK_ERRNOS:
        return NackError(f"{where}: not acknowledged ({exc.strerror or exc})")
    return BusError(f"{where}: {exc}")


class I2CDevice:
    """One device on a shared bus; every transaction holds the bus lock.

    The lock keeps a write-then-read pair from one driver from interleaving
    with another driver's traffic when sensors sample on separate threads.

    ``clock`` is the transport's time: a driver declares a datasheet delay or a
    deadline and waits or measures it on this clock, never on ``time`` itself, so a
    test hands in a clock of its own instead of patching ``time.sleep``.
    """

    def __init__(self, bus: SMBusLike, address: int, lock: threading.Lock | None = None,
                 clock: Clock = SYSTEM) -> None:
        self.bus = bus
        self.address = address
        self.clock = clock
        self._lock = lock or threading.Lock()

    def write(self, data: bytes) -> None:
        """Plain write transaction (START, address+W, data, STOP)."""
        msg = write_message(self.address, data)
        with self._lock:
            try:
                self.bus.i2c_rdwr(msg)
            except OSError as exc:
                raise translate_os_error(exc, self.address, "write") from exc

    def read(self, length: int) -> bytes:
        """Plain read transaction of ``length`` bytes."""
        msg = read_message(self.address, length)
        with self._lock:
            try:
                self.bus.i2c_rdwr(msg)
            except OSError as exc:
                raise translate_os_error(exc, self.address, "read") from exc
        return bytes(msg)

    def read_register(self, register: int, length: int) -> bytes:
        """Register read with a repeated start (register-mapped chips like the BME280)."""
        with self._lock:
            try:
                return bytes(self.bus.read_i2c_block_data(self.address, register, length))
            except OSError as exc:
                raise translate_os_error(exc, self.address, f"read reg 0x{register:02x}") from exc

    def write_register(self, register: int, data: bytes) -> None:
        """Register write: register pointer followed by data bytes."""
        with self._lock:
            try:
                self.bus.write_i2c_block_data(self.address, register, list(data))
            except OSError as exc:
                raise translate_os_error(exc, self.address, f"write reg 0x{register:02x}") from exc
