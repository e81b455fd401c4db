"""Simulated hardware: every configured sensor backed by its wire-level emulator.

``lokaalmeten simulate`` runs the real daemon, real drivers and real pyserial
against these, so what a newcomer sees is what a box with hardware does.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from agent.bus.audio import DEFAULT_BLOCK_S, WAV_PREFIX, AudioSource, PacedSource, open_audio
from agent.bus.i2c import I2CDevice
from agent.bus.serial import SerialLink, open_serial
from agent.config.profiles import Profile
from agent.emulators import registry
from agent.emulators.i2c_bus import EmulatedI2CBus
from agent.emulators.serial_pty import PtySerialEmulator
from agent.errors import BusError


class SimulatedBuses:
    """A :class:`~agent.bus.provider.BusProvider` whose ports and buses are emulators."""

    def __init__(self, link_dir: Path) -> None:
        self._link_dir = link_dir
        self._serial: dict[str, PtySerialEmulator] = {}
        self._i2c: dict[str, EmulatedI2CBus] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._audio: dict[str, PacedSource] = {}

    def add(self, profile: Profile, *, port: str | None = None, bus: int | str | None = None,
            address: int | None = None, device: str | None = None) -> object:
        """Create the emulated device for a configured sensor; returns it for fault injection.

        An emulator registered under the model name is built with no arguments; a
        generic one registered under the profile's driver name (e.g. ``modbus``)
        is handed the profile, which describes the device it must play. An audio
        sensor's emulator is a sound source kept under its ``device`` name.
        """
        model = profile.model
        emulators = registry()
        if model in emulators:
            device_obj = emulators[model].factory()
        elif profile.driver_name in emulators:
            device_obj = emulators[profile.driver_name].factory(profile=profile)
        else:
            raise BusError(f"no emulator for model {model!r}")
        if profile.bus == "audio":
            if device is not None and not device.startswith(WAV_PREFIX):
                self._audio[device] = device_obj
            return device_obj
        if port is not None:
            emulator = PtySerialEmulator(device_obj, self._link_dir,
                                         name=f"tty-{len(self._serial)}-{model}")
            emulator.start()
            self._serial[port] = emulator
        else:
            key = str(bus)
            if key not in self._i2c:
                self._i2c[key] = EmulatedI2CBus()
                self._locks[key] = threading.Lock()
            assert address is not None
            self._i2c[key].attach(address, device_obj)
        return device_obj

    def serial_emulator(self, port: str) -> PtySerialEmulator:
        return self._serial[port]

    def i2c_bus(self, bus: int | str) -> EmulatedI2CBus:
        return self._i2c[str(bus)]

    def serial(self, port: str, baudrate: int, timeout_s: float) -> SerialLink:
        emulator = self._serial.get(port)
        if emulator is None:
            raise BusError(f"{port}: no emulated device configured there")
        return open_serial(emulator.port, baudrate, timeout_s)

    def i2c(self, bus: int | str, address: int) -> I2CDevice:
        key = str(bus)
        if key not in self._i2c:
            raise BusError(f"I2C bus {bus}: no emulated devices configured there")
        return I2CDevice(self._i2c[key], address, self._locks[key])

    def audio(self, device: str, sample_rate: int, *, channel: int = 0,
              block_s: float = DEFAULT_BLOCK_S) -> AudioSource:
        """``wav:`` devices replay their file; any other name hears simulated street noise.

        The same source is handed out again when a sensor reopens its device, as a
        sound card would be; one added for a different sample rate is replaced.
        """
        if device.startswith(WAV_PREFIX):
            return open_audio(device, sample_rate, channel=channel, block_s=block_s)
        source = self._audio.get(device)
        if source is None or source.sample_rate != sample_rate:
            source = registry()["microphone"].factory(sample_rate, block_s=block_s)
            self._audio[device] = source
        return source

    def audio_source(self, device: str) -> PacedSource:
        return self._audio[device]

    def close(self) -> None:
        for emulator in self._serial.values():
            with contextlib.suppress(OSError):
                emulator.close()
        for source in self._audio.values():
            source.close()
