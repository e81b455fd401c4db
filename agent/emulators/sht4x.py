"""Emulated Sensirion SHT4x: single-byte commands, word + CRC replies, heater pulses.

A measurement or heater command leaves a result that is readable only after the
conversion (or the heating plus conversion) time; a read before that, or with
nothing pending, is NACKed, as on the real chip. Unknown commands and any write
longer than one byte are NACKed: the SHT4x has no command with an argument.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from functools import partial

from agent.clock import SYSTEM
from agent.emulators import register
from agent.emulators._log import BoundedLog
from agent.emulators._sensirion import Handler
from agent.emulators.i2c_bus import Nack
from agent.emulators.sht3x import SensirionTRH, sht3x_raw_temperature


class Sht4xCommand(IntEnum):
    """The SHT4x datasheet's one-byte commands, by name."""

    MEASURE_HIGH = 0xFD
    MEASURE_MEDIUM = 0xF6
    MEASURE_LOW = 0xE0
    SERIAL = 0x89
    SOFT_RESET = 0x94
    HEATER_200MW_1S = 0x39
    HEATER_200MW_100MS = 0x32
    HEATER_110MW_1S = 0x2F
    HEATER_110MW_100MS = 0x24
    HEATER_20MW_1S = 0x1E
    HEATER_20MW_100MS = 0x15


_C = Sht4xCommand
# Typical conversion times (datasheet timing table), seconds.
_MEASURE = {_C.MEASURE_HIGH: 0.0069, _C.MEASURE_MEDIUM: 0.0037, _C.MEASURE_LOW: 0.0013}
# Heater commands: (power mW, on-time s); a high-precision measurement follows.
_HEATER = {_C.HEATER_200MW_1S: (200, 1.0), _C.HEATER_200MW_100MS: (200, 0.1),
           _C.HEATER_110MW_1S: (110, 1.0), _C.HEATER_110MW_100MS: (110, 0.1),
           _C.HEATER_20MW_1S: (20, 1.0), _C.HEATER_20MW_100MS: (20, 0.1)}
_HEATING_K_PER_MJ = 0.25
"""Crude die warming: kelvin per millijoule of heater energy (200 mW · 1 s → +50 K)."""


def sht4x_raw_humidity(percent: float) -> int:
    """The raw word for ``percent`` RH (inverse of -6 + 125·S/65535)."""
    return min(0xFFFF, max(0, round((percent + 6.0) * 65535.0 / 125.0)))


class Sht4xDevice(SensirionTRH):
    """The SHT4x command set from the chip's side."""

    def __init__(self, *, temperature: float | None = None, humidity: float | None = None,
                 serial: int = 0x1C7A_33D5, seed: int = 4,
                 clock: Callable[[], float] = SYSTEM.monotonic) -> None:
        super().__init__(temperature=temperature, humidity=humidity, serial=serial,
                         seed=seed, clock=clock)
        self.heater_pulses: BoundedLog[tuple[float, float]] = BoundedLog()
        """(start time, on-time s) of every heater pulse, for duty-cycle checks."""

    def decode(self, data: bytes) -> tuple[int, list[int]]:
        if len(data) != 1:
            raise Nack(f"SHT4x commands are one byte, got {len(data)}")
        return data[0], []

    def execute(self, code: int, args: list[int], now: float) -> None:
        """The command table; every accepted command is logged."""
        super().execute(code, args, now)
        self.commands.append(code)

    def handlers(self) -> dict[int, Handler]:
        table: dict[int, Handler] = {
            code: partial(self._measure, delay_s) for code, delay_s in _MEASURE.items()}
        table.update({code: partial(self._heat, *pulse) for code, pulse in _HEATER.items()})
        table[_C.SERIAL] = lambda _: self.reply([self.serial >> 16, self.serial & 0xFFFF])
        table[_C.SOFT_RESET] = lambda _: None  # a reset only drops what was pending
        return table

    def unknown_command(self, code: int) -> None:
        raise Nack(f"unknown command 0x{code:02x}")

    def _measure(self, delay_s: float, args: list[int]) -> None:
        self._step()
        self.reply(self._words(self.temperature, self.humidity), delay_s=delay_s)

    def _heat(self, power_mw: int, on_s: float, args: list[int]) -> None:
        self.heater_pulses.append((self.now, on_s))
        hot = self.temperature + power_mw * on_s * _HEATING_K_PER_MJ
        # Same water vapour at a hotter die: RH falls roughly 6 % per kelvin.
        dry = self.humidity * 0.94 ** (hot - self.temperature)
        self.reply(self._words(hot, dry), delay_s=on_s + _MEASURE[_C.MEASURE_HIGH])

    @staticmethod
    def _words(celsius: float, percent: float) -> list[int]:
        # The SHT4x temperature transfer function is the SHT3x one.
        return [sht3x_raw_temperature(celsius), sht4x_raw_humidity(percent)]


@register("sht4x")
def make_sht4x(temperature: float | None = None, humidity: float | None = None,
               serial: int = 0x1C7A_33D5, seed: int = 4) -> Sht4xDevice:
    """An SHT4x with slowly drifting air, or pinned values when given."""
    return Sht4xDevice(temperature=temperature, humidity=humidity, serial=serial, seed=seed)
