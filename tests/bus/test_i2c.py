"""I2C transfers through ``agent.bus.i2c`` leave nothing for the garbage collector."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from smbus2.smbus2 import i2c_rdwr_ioctl_data

from agent.bus.i2c import I2CDevice, read_message
from agent.emulators.i2c_bus import EmulatedI2CBus

ADDRESS = 0x44


class Echo:
    """A device that reads back what was last written to it."""

    def __init__(self) -> None:
        self.last = b"\x00"

    def on_write(self, data: bytes) -> None:
        self.last = data or b"\x00"

    def on_read(self, length: int) -> bytes:
        return (self.last * length)[:length]


@pytest.fixture
def garbage() -> Iterator[list[object]]:
    """What becomes cyclic garbage meanwhile, kept for a look instead of freed."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def transfers(device: I2CDevice) -> None:
    for length in (2, 3, 6, 9, 48):
        device.write(bytes(range(length)))
        assert device.read(length) == bytes(range(length))
        device.read_register(0x10, length)
        # What smbus2's SMBus.i2c_rdwr builds around the messages before its ioctl.
        i2c_rdwr_ioctl_data.create(read_message(ADDRESS, length))


def test_transfers_make_no_ctypes_types_that_become_garbage(garbage: list[object]) -> None:
    # Each would be a class with its own dict, several kB, freed only by a full collection.
    bus = EmulatedI2CBus()
    bus.attach(ADDRESS, Echo())
    device = I2CDevice(bus, ADDRESS)
    transfers(device)  # the first use of each length makes its type, held from then on
    for _ in range(20):
        transfers(device)
    gc.collect()
    made = [type(o).__name__ for o in garbage if type(o).__name__ == "PyCArrayType"]
    assert made == [], f"{len(made)} ctypes array types made and dropped by 100 transfers"
