"""Emulated Sensirion SHT3x-DIS, plus the T/RH model shared with the SHT4x emulator.

Speaks the chip's side of the wire: 16-bit commands, ``word + CRC-8`` replies, a
single-shot conversion that takes real (emulated-clock) time during which a read is
NACKed, a status register, heater, serial number and alert-limit registers (the only
SHT3x commands that carry an argument, so the only place argument CRCs are checked).

Modelled subset: single-shot mode (clock stretching is modelled as an instant result,
since an emulated bus cannot hold SCL), soft reset, heater, status, serial, alert
limits and break. Periodic mode, ART and fetch are not modelled and are NACKed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from enum import IntEnum
from functools import partial
from typing import NoReturn

from agent.clock import SYSTEM
from agent.emulators import register
from agent.emulators._log import BoundedLog
from agent.emulators._sensirion import Handler, SensirionDevice, split_write
from agent.emulators.i2c_bus import Nack


class Sht3xCommand(IntEnum):
    """The SHT3x datasheet's single-shot and housekeeping commands, by name."""

    MEASURE_HIGH = 0x2400
    MEASURE_MEDIUM = 0x240B
    MEASURE_LOW = 0x2416
    MEASURE_HIGH_STRETCH = 0x2C06
    MEASURE_MEDIUM_STRETCH = 0x2C0D
    MEASURE_LOW_STRETCH = 0x2C10
    SOFT_RESET = 0x30A2
    HEATER_ON = 0x306D
    HEATER_OFF = 0x3066
    BREAK = 0x3093
    """Ends periodic mode; nothing else to do."""
    READ_STATUS = 0xF32D
    CLEAR_STATUS = 0x3041
    READ_SERIAL = 0x3682
    READ_SERIAL_STRETCH = 0x3780


_C = Sht3xCommand
# Typical conversion times (datasheet timing table, t_MEAS typ), in seconds; with clock
# stretching the chip holds the read instead, so the reply is readable at once.
_MEASURE_S = {_C.MEASURE_HIGH: 0.0125, _C.MEASURE_MEDIUM: 0.0045, _C.MEASURE_LOW: 0.0025,
              _C.MEASURE_HIGH_STRETCH: 0.0, _C.MEASURE_MEDIUM_STRETCH: 0.0,
              _C.MEASURE_LOW_STRETCH: 0.0}
# Alert limits: write command -> matching read command (sht3x.c).
_ALERT_WRITE_TO_READ = {0x611D: 0xE11F, 0x6116: 0xE114, 0x610B: 0xE109, 0x6100: 0xE102}

_STATUS_ALERT, _STATUS_HEATER, _STATUS_RESET = 1 << 15, 1 << 13, 1 << 4
_STATUS_CMD_FAILED, _STATUS_WRITE_CRC = 1 << 1, 1 << 0
_STATUS_CLEARABLE = (1 << 15) | (1 << 11) | (1 << 10) | (1 << 4)


def sht3x_raw_temperature(celsius: float) -> int:
    """The raw word the chip would send for ``celsius`` (inverse of -45 + 175·S/65535)."""
    return min(0xFFFF, max(0, round((celsius + 45.0) * 65535.0 / 175.0)))


def sht3x_raw_humidity(percent: float) -> int:
    """The raw word for ``percent`` RH (inverse of 100·S/65535)."""
    return min(0xFFFF, max(0, round(percent * 65535.0 / 100.0)))


class SensirionTRH(SensirionDevice):
    """What every Sensirion T/RH chip here does: values that drift, serial, command log.

    A command leaves either an immediate reply (status, serial) or a measurement
    that becomes readable after its conversion time; a read header is NACKed while
    the conversion runs and when nothing is pending, as on the real chips. Reading
    consumes the result, so the same data is never sent twice.
    """

    def __init__(self, *, temperature: float | None, humidity: float | None, serial: int,
                 seed: int, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.walk = temperature is None and humidity is None
        """Random-walk the values on each conversion unless a test pinned them."""
        self.temperature = 21.0 if temperature is None else temperature
        self.humidity = 55.0 if humidity is None else humidity
        self.serial = serial
        self.commands: BoundedLog[int] = BoundedLog()
        """Every accepted command code, in order (for tests)."""
        self._rng = random.Random(seed)

    def on_write(self, data: bytes) -> None:
        if data:  # an empty write is an address probe: acknowledged, no command
            super().on_write(data)

    def _step(self) -> None:
        """Drift the values a little, as air does between two readings."""
        if self.walk:
            self.temperature = min(40.0, max(-10.0, self.temperature + self._rng.gauss(0, 0.05)))
            self.humidity = min(95.0, max(5.0, self.humidity + self._rng.gauss(0, 0.2)))


class Sht3xDevice(SensirionTRH):
    """The SHT3x-DIS command set (single-shot subset), from the chip's side."""

    def __init__(self, *, temperature: float | None = None, humidity: float | None = None,
                 serial: int = 0x0B5E_2F01, seed: int = 3,
                 clock: Callable[[], float] = SYSTEM.monotonic) -> None:
        super().__init__(temperature=temperature, humidity=humidity, serial=serial,
                         seed=seed, clock=clock)
        self.status = 0
        self.alert_limits: dict[int, int] = {}
        self.power_cycle()

    def power_cycle(self) -> None:
        """Power-on state: heater off, alert-pending and reset-detected flags set."""
        self.clear_reply()
        self.status = _STATUS_ALERT | _STATUS_RESET
        self.alert_limits = dict.fromkeys(_ALERT_WRITE_TO_READ.values(), 0)

    @property
    def heater(self) -> bool:
        return bool(self.status & _STATUS_HEATER)

    def decode(self, data: bytes) -> tuple[int, list[int]]:
        """Commands carry no argument, except the alert limits: one word whose CRC the
        chip checks (datasheet §4); a failure sets a status flag as on the chip."""
        if len(data) < 2:
            self._fail("incomplete command")
        code = int.from_bytes(data[:2], "big")
        if code not in _ALERT_WRITE_TO_READ:
            if len(data) > 2:
                self._fail(f"command 0x{code:04x} takes no argument")
            return code, []
        try:
            _, args = split_write(data)
            self.expect(args, 1)
        except Nack:
            self.status |= _STATUS_WRITE_CRC
            raise
        return code, args

    def execute(self, code: int, args: list[int], now: float) -> None:
        """The command table, then what every accepted command does to the status."""
        super().execute(code, args, now)
        self.status &= ~(_STATUS_CMD_FAILED | _STATUS_WRITE_CRC)
        self.commands.append(code)

    def handlers(self) -> dict[int, Handler]:
        table: dict[int, Handler] = {
            code: partial(self._measure, delay_s) for code, delay_s in _MEASURE_S.items()}
        table.update({
            _C.SOFT_RESET: lambda _: self.power_cycle(),
            _C.HEATER_ON: lambda _: self._heater(on=True),
            _C.HEATER_OFF: lambda _: self._heater(on=False),
            _C.BREAK: lambda _: None,
            _C.READ_STATUS: lambda _: self.reply([self.status]),
            _C.CLEAR_STATUS: self._clear_status,
            _C.READ_SERIAL: self._read_serial, _C.READ_SERIAL_STRETCH: self._read_serial})
        table.update({write: partial(self._set_alert, read)
                      for write, read in _ALERT_WRITE_TO_READ.items()})
        table.update({read: partial(self._read_alert, read) for read in self.alert_limits})
        return table

    def unknown_command(self, code: int) -> None:
        self._fail(f"unknown command 0x{code:04x}")

    def _measure(self, delay_s: float, args: list[int]) -> None:
        self._step()
        words = [sht3x_raw_temperature(self.temperature), sht3x_raw_humidity(self.humidity)]
        self.reply(words, delay_s=delay_s)

    def _heater(self, *, on: bool) -> None:
        self.status = self.status | _STATUS_HEATER if on else self.status & ~_STATUS_HEATER

    def _clear_status(self, args: list[int]) -> None:
        self.status &= ~_STATUS_CLEARABLE

    def _read_serial(self, args: list[int]) -> None:
        self.reply([self.serial >> 16, self.serial & 0xFFFF])

    def _set_alert(self, read_code: int, args: list[int]) -> None:
        self.alert_limits[read_code] = args[0]

    def _read_alert(self, read_code: int, args: list[int]) -> None:
        self.reply([self.alert_limits[read_code]])

    def _fail(self, reason: str) -> NoReturn:
        self.status |= _STATUS_CMD_FAILED
        raise Nack(reason)


@register("sht3x")
def make_sht3x(temperature: float | None = None, humidity: float | None = None,
               serial: int = 0x0B5E_2F01, seed: int = 3) -> Sht3xDevice:
    """An SHT3x with slowly drifting air, or pinned values when given."""
    return Sht3xDevice(temperature=temperature, humidity=humidity, serial=serial, seed=seed)
