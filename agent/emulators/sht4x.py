"""Emulated Sensirion SHT4x: single-byte commands, word + CRC replies, heater pulses.

A measurement or heater command leaves a result that is readable only after the
conversion (or the heating plus conversion) time; a read before that, or with
nothing pending, is NACKed, as on the real chip. Unknown commands and any write
longer than one byte are NACKed: the SHT4x has no command with an argument.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.emulators import register
from agent.emulators._log import BoundedLog
from agent.emulators.i2c_bus import Nack
from agent.emulators.sht3x import SensirionTRH, sht3x_raw_temperature

# Typical conversion times (datasheet timing table), seconds.
_MEASURE = {0xFD: 0.0069, 0xF6: 0.0037, 0xE0: 0.0013}
_SERIAL, _SOFT_RESET = 0x89, 0x94
# Heater commands: (power mW, on-time s); a high-precision measurement follows.
_HEATER = {0x39: (200, 1.0), 0x32: (200, 0.1), 0x2F: (110, 1.0), 0x24: (110, 0.1),
           0x1E: (20, 1.0), 0x15: (20, 0.1)}
_HEATING_K_PER_MJ = 0.25
"""Crude die warming: kelvin per millijoule of heater energy (200 mW · 1 s → +50 K)."""


def sht4x_raw_humidity(percent: float) -> int:
    """The raw word for ``percent`` RH (inverse of -6 + 125·S/65535)."""
    return min(0xFFFF, max(0, round((percent + 6.0) * 65535.0 / 125.0)))


class Sht4xDevice(SensirionTRH):
    """The SHT4x command set from the chip's side."""

    def __init__(self, *, temperature: float | None = None, humidity: float | None = None,
                 serial: int = 0x1C7A_33D5, seed: int = 4,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(temperature=temperature, humidity=humidity, serial=serial,
                         seed=seed, clock=clock)
        self.heater_pulses: BoundedLog[tuple[float, float]] = BoundedLog()
        """(start time, on-time s) of every heater pulse, for duty-cycle checks."""

    def decode(self, data: bytes) -> tuple[int, list[int]]:
        if len(data) != 1:
            raise Nack(f"SHT4x commands are one byte, got {len(data)}")
        return data[0], []

    def execute(self, code: int, args: list[int], now: float) -> None:
        if code in _MEASURE:
            self._step()
            self.reply(self._words(self.temperature, self.humidity), delay_s=_MEASURE[code])
        elif code in _HEATER:
            power_mw, on_s = _HEATER[code]
            self.heater_pulses.append((now, on_s))
            hot = self.temperature + power_mw * on_s * _HEATING_K_PER_MJ
            # Same water vapour at a hotter die: RH falls roughly 6 % per kelvin.
            dry = self.humidity * 0.94 ** (hot - self.temperature)
            self.reply(self._words(hot, dry), delay_s=on_s + _MEASURE[0xFD])
        elif code == _SERIAL:
            self.reply([self.serial >> 16, self.serial & 0xFFFF])
        elif code != _SOFT_RESET:  # a reset only drops what was pending
            raise Nack(f"unknown command 0x{code:02x}")
        self.commands.append(code)

    @staticmethod
    def _words(celsius: float, percent: float) -> list[int]:
        # The SHT4x temperature transfer function is the SHT3x one.
        return [sht3x_raw_temperature(celsius), sht4x_raw_humidity(percent)]


@register("sht4x")
def make_sht4x(temperature: float | None = None, humidity: float | None = None,
               serial: int = 0x1C7A_33D5, seed: int = 4) -> Sht4xDevice:
    """An SHT4x with slowly drifting air, or pinned values when given."""
    return Sht4xDevice(temperature=temperature, humidity=humidity, serial=serial, seed=seed)
