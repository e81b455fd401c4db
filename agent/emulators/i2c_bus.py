"""An smbus2-compatible bus object with emulated devices attached.

Devices see raw transactions exactly as the chip would: a write delivers the
bytes after the address, a read asks for ``n`` bytes. Register reads through
``read_i2c_block_data`` arrive as a one-byte write (the register pointer)
followed by a read, as the repeated-start transaction does on real wires.
An absent or vanished device, or one that refuses a byte, raises
``OSError(EREMOTEIO)`` just as the Linux kernel does.
"""

from __future__ import annotations

import errno
import os
import threading
from typing import Protocol

from smbus2 import i2c_msg

from agent.bus.i2c import read_message, write_message

_I2C_M_RD = 0x0001


class EmulatedI2CDevice(Protocol):
    """A chip's side of the bus."""

    def on_write(self, data: bytes) -> None:
        """Bytes written after the address; raise :class:`Nack` to refuse them."""

    def on_read(self, length: int) -> bytes:
        """Return ``length`` bytes for a read; raise :class:`Nack` to refuse."""


class Nack(Exception):
    """Raised by an emulated device to NACK the current transaction."""


def _nack_error(address: int) -> OSError:
    return OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO) + f" (0x{address:02x})")


class EmulatedI2CBus:
    """A bus with devices at addresses; usable wherever ``smbus2.SMBus`` is.

    Bus-level faults: :meth:`vanish` detaches a device (every transaction
    NACKs) until :meth:`reappear`; :meth:`fail_next` makes the next ``n``
    transactions to an address fail with a given errno (121 NACK, 110 timeout).
    """

    def __init__(self) -> None:
        self._devices: dict[int, EmulatedI2CDevice] = {}
        self._vanished: set[int] = set()
        self._failures: dict[int, list[int]] = {}
        self._lock = threading.Lock()
        self.transactions = 0

    def attach(self, address: int, device: EmulatedI2CDevice) -> None:
        self._devices[address] = device

    def device(self, address: int) -> EmulatedI2CDevice:
        """The emulated device attached at ``address`` (for tests that disturb it)."""
        return self._devices[address]

    def vanish(self, address: int) -> None:
        self._vanished.add(address)

    def reappear(self, address: int) -> None:
        self._vanished.discard(address)

    def fail_next(self, address: int, count: int = 1, err: int = errno.EREMOTEIO) -> None:
        self._failures.setdefault(address, []).extend([err] * count)

    def _device(self, address: int) -> EmulatedI2CDevice:
        pending = self._failures.get(address)
        if pending:
            err = pending.pop(0)
            raise OSError(err, os.strerror(err))
        device = self._devices.get(address)
        if device is None or address in self._vanished:
            raise _nack_error(address)
        return device

    def i2c_rdwr(self, *msgs: i2c_msg) -> None:
        """Combined transaction; each message is a write or a read to one address."""
        with self._lock:
            self.transactions += 1
            for msg in msgs:
                device = self._device(msg.addr)
                try:
                    if msg.flags & _I2C_M_RD:
                        data = device.on_read(msg.len)
                        if len(data) != msg.len:
                            raise AssertionError(f"device returned {len(data)} of {msg.len} bytes")
                        for index, value in enumerate(data):
                            msg.buf[index] = bytes([value])
                    else:
                        device.on_write(bytes(msg))
                except Nack as exc:
                    raise _nack_error(msg.addr) from exc

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int,
                            force: bool | None = None) -> list[int]:
        write = write_message(i2c_addr, [register])
        read = read_message(i2c_addr, length)
        self.i2c_rdwr(write, read)
        return list(bytes(read))  # smbus2's stub types iter(i2c_msg) wrongly

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int],
                             force: bool | None = None) -> None:
        self.i2c_rdwr(write_message(i2c_addr, [register, *data]))

    def close(self) -> None:
        """Nothing to release; present for interface parity with ``SMBus``."""
