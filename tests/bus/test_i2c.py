"""I2C transfers through ``agent.bus.i2c`` leave nothing for the garbage collector."""

from __future__ import annotations

from smbus2.smbus2 import i2c_rdwr_ioctl_data

from agent.bus.i2c import I2CDevice, read_message
from agent.emulators.i2c_bus import EmulatedI2CBus
from tests.garbage import dropped_array_types

ADDRESS = 0x44


class Echo:
    """A device that reads back what was last written to it."""

    def __init__(self) -> None:
        self.last = b"\x00"

    def on_write(self, data: bytes) -> None:
        self.last = data or b"\x00"

    def on_read(self, length: int) -> bytes:
        return (self.last * length)[:length]


def transfers(device: I2CDevice) -> None:
    for length in (2, 3, 6, 9, 48):
        device.write(bytes(range(length)))
        assert device.read(length) == bytes(range(length))
        device.read_register(0x10, length)
        # What smbus2's SMBus.i2c_rdwr builds around the messages before its ioctl.
        i2c_rdwr_ioctl_data.create(read_message(ADDRESS, length))


def test_transfers_make_no_ctypes_types_that_become_garbage() -> None:
    bus = EmulatedI2CBus()
    bus.attach(ADDRESS, Echo())
    device = I2CDevice(bus, ADDRESS)
    assert dropped_array_types(lambda: transfers(device)) == 0
