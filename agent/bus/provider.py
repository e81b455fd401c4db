"""Where drivers get their buses: real hardware, or (in simulation) emulated devices."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

from agent.bus.audio import DEFAULT_BLOCK_S, AudioSource, open_audio
from agent.bus.i2c import I2CDevice, SMBusLike
from agent.bus.serial import SerialLink, open_serial
from agent.errors import BusError


class BusProvider(Protocol):
    """Opens the bus a sensor is attached to."""

    def serial(self, port: str, baudrate: int, timeout_s: float) -> SerialLink:
        """Open a serial port (8N1)."""

    def i2c(self, bus: int | str, address: int) -> I2CDevice:
        """A device handle on a (shared) I2C bus."""

    def audio(self, device: str, sample_rate: int, *, channel: int = 0,
              block_s: float = DEFAULT_BLOCK_S) -> AudioSource:
        """A sound source: a capture device, or ``wav:<path>`` replayed in real time."""


class HardwareBuses:
    """Real ports through pyserial, ``/dev/i2c-N`` buses through smbus2, sound through PortAudio.

    One ``SMBus`` (and one lock) per bus is shared by every sensor on it.
    """

    def __init__(self) -> None:
        self._buses: dict[str, tuple[SMBusLike, threading.Lock]] = {}
        self._guard = threading.Lock()

    def serial(self, port: str, baudrate: int, timeout_s: float) -> SerialLink:
        return open_serial(port, baudrate, timeout_s)

    def i2c(self, bus: int | str, address: int) -> I2CDevice:
        from smbus2 import SMBus  # noqa: PLC0415 - only hardware runs need the kernel bus

        key = str(bus)
        with self._guard:
            if key not in self._buses:
                target: int | str = bus if isinstance(bus, int) else str(Path(bus))
                try:
                    self._buses[key] = (SMBus(target), threading.Lock())
                except (OSError, FileNotFoundError) as exc:
                    raise BusError(f"I2C bus {bus}: cannot open: {exc}") from exc
            handle, lock = self._buses[key]
        return I2CDevice(handle, address, lock)

    def audio(self, device: str, sample_rate: int, *, channel: int = 0,
              block_s: float = DEFAULT_BLOCK_S) -> AudioSource:
        return open_audio(device, sample_rate, channel=channel, block_s=block_s)
