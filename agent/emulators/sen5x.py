"""Emulated Sensirion SEN50 / SEN54 / SEN55 on I2C: the chip's side of the protocol.

States: idle, measuring (PM + RH/T/gas) and measuring without PM (0x0037).
One sample per measurement interval on a monotonic clock latches the
data-ready flag until "read measured values"; without a new sample that command
repeats the previous values, and before the first sample every field is at
its "unknown" sentinel. Per model the fields it lacks are always unknown, and
on the SEN55 the NOx index stays unknown for ``nox_startup_s`` after the
measurement starts (the real device: 10-11 s after power-on or reset).
Faults come from :class:`~agent.emulators._sensirion.SensirionDevice` plus the
settable ``status`` register (sticky error bits, cleared by reset or 0xD210).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from enum import IntEnum

from agent.clock import SYSTEM
from agent.emulators import register
from agent.emulators._sensirion import IDLE, MEASURING, Handler, SensirionDevice, ascii_words
from agent.emulators._walk import Walk
from agent.emulators.i2c_bus import Nack

MEASURING_WITHOUT_PM = "measuring_without_pm"

_UINT16_UNKNOWN = 0xFFFF
_INT16_UNKNOWN = 0x7FFF
_STATUS_FAN_CLEANING = 1 << 19
_STATUS_ERROR_BITS = (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7)

# Frame order of 0x03C4 with the datasheet scale factors.
_FIELDS = (("pm1_0", 10.0), ("pm2_5", 10.0), ("pm4_0", 10.0), ("pm10", 10.0),
           ("relative_humidity", 100.0), ("temperature", 200.0), ("voc_index", 10.0),
           ("nox_index", 10.0))
_PM = ("pm1_0", "pm2_5", "pm4_0", "pm10")
_MODEL_FIELDS = {
    "sen50": set(_PM),
    "sen54": {*_PM, "relative_humidity", "temperature", "voc_index"},
    "sen55": {name for name, _ in _FIELDS},
}


class Sen5xCommand(IntEnum):
    """The SEN5x datasheet's I2C commands, by name."""

    START = 0x0021
    START_WITHOUT_PM = 0x0037
    STOP = 0x0104
    DATA_READY = 0x0202
    READ_VALUES = 0x03C4
    READ_PM_VALUES = 0x0413
    FAN_CLEANING = 0x5607
    TEMPERATURE_OFFSET = 0x60B2
    AUTO_CLEANING_INTERVAL = 0x8004
    PRODUCT_NAME = 0xD014
    SERIAL_NUMBER = 0xD033
    FIRMWARE_VERSION = 0xD100
    READ_STATUS = 0xD206
    READ_AND_CLEAR_STATUS = 0xD210
    RESET = 0xD304


class Sen5xDevice(SensirionDevice):
    """A SEN5x with plausible, slowly varying values; ``values`` pins any of them
    (``None`` pins a field to "unknown")."""

    rereadable = True  # a command sets the read pointer; its data can be read again

    def __init__(self, model: str = "sen55", *, seed: int = 55,
                 values: Mapping[str, float | None] | None = None,
                 serial: str = "A1B2C3D4E5F60718", firmware: tuple[int, int] = (2, 0),
                 auto_cleaning_interval_s: int = 604800, sample_period_s: float = 1.0,
                 nox_startup_s: float = 10.0, cleaning_s: float = 10.0,
                 clock: Callable[[], float] = SYSTEM.monotonic) -> None:
        super().__init__(clock)
        if model not in _MODEL_FIELDS:
            raise ValueError(f"unknown SEN5x model {model!r}")
        if sample_period_s <= 0:
            raise ValueError("sample_period_s must be positive")
        unknown = set(values or {}) - {name for name, _ in _FIELDS}
        if unknown:
            raise ValueError(f"unknown SEN5x quantities {sorted(unknown)}")
        self.model = model
        self.serial = serial
        self.firmware = firmware
        self.status = 0
        """Device status register; set error bits 4-7 or bit 21 to inject faults."""
        self.state = IDLE
        self.pinned = dict(values or {})
        self.auto_cleaning_interval_s = auto_cleaning_interval_s
        self.temperature_offset = (0, 0, 0)
        """Raw words (offset x200, slope x10000, time constant s) as last written."""
        self._rng = random.Random(seed)
        self._walks = {
            "pm2_5": Walk(8.0, 0.5, 300.0, 0.05, multiplicative=True),
            "relative_humidity": Walk(55.0, 15.0, 98.0, 0.4),
            "temperature": Walk(17.0, -10.0, 40.0, 0.05),
            "voc_index": Walk(100.0, 1.0, 500.0, 0.03, multiplicative=True),
            "nox_index": Walk(1.0, 1.0, 500.0, 0.2),
        }
        self._values = self._derive()
        self._period = sample_period_s
        self._nox_startup_s = nox_startup_s
        self._cleaning_s = cleaning_s
        self._t0 = 0.0
        self._consumed = 0
        self._cleaning_until = -math.inf

    # -- test helpers -----------------------------------------------------------------
    def power_cycle(self) -> None:
        """Power loss and return: idle, volatile settings and status cleared."""
        self._power_on_state()

    # -- protocol ---------------------------------------------------------------------
    def handlers(self) -> dict[int, Handler]:
        return {
            Sen5xCommand.START: self._start, Sen5xCommand.START_WITHOUT_PM: self._start_without_pm,
            Sen5xCommand.STOP: self._stop, Sen5xCommand.DATA_READY: self._data_ready,
            Sen5xCommand.READ_VALUES: self._read_values,
            Sen5xCommand.READ_PM_VALUES: self._read_pm_values,
            Sen5xCommand.FAN_CLEANING: self._fan_cleaning,
            Sen5xCommand.TEMPERATURE_OFFSET: self._temperature_offset,
            Sen5xCommand.AUTO_CLEANING_INTERVAL: self._auto_cleaning,
            Sen5xCommand.PRODUCT_NAME: self._product_name, Sen5xCommand.SERIAL_NUMBER: self._serial,
            Sen5xCommand.FIRMWARE_VERSION: self._version,
            Sen5xCommand.READ_STATUS: self._read_status,
            Sen5xCommand.READ_AND_CLEAR_STATUS: self._read_clear_status,
            Sen5xCommand.RESET: self._reset,
        }

    def _start(self, words: list[int]) -> None:
        self.expect(words, 0)
        self._begin(MEASURING)

    def _start_without_pm(self, words: list[int]) -> None:
        self.expect(words, 0)
        if self.model == "sen50":
            raise Nack("the SEN50 has nothing to measure without PM")
        self._begin(MEASURING_WITHOUT_PM)

    def _stop(self, words: list[int]) -> None:
        self.expect(words, 0)
        self.state = IDLE  # no effect when already idle
        self._cleaning_until = -math.inf

    def _data_ready(self, words: list[int]) -> None:
        self.expect(words, 0)
        # Padding byte, then the flag byte.
        self.reply(lambda: [0x0001 if self.report_ready(self._ready()) else 0x0000])

    def _read_values(self, words: list[int]) -> None:
        self.expect(words, 0)
        values = self._sample()
        out = []
        for index, (name, scale) in enumerate(_FIELDS):
            value = values.get(name)
            unknown = _UINT16_UNKNOWN if index < len(_PM) else _INT16_UNKNOWN
            out.append(unknown if value is None else round(value * scale) & 0xFFFF)
        self.reply(out)

    def _read_pm_values(self, words: list[int]) -> None:
        """0x0413: mass x10, number concentration x10, typical size x1000 (um)."""
        self.expect(words, 0)
        values = self._sample()
        pm2_5 = values.get("pm2_5")
        if pm2_5 is None:
            self.reply([_UINT16_UNKNOWN] * 10)
            return
        nc1 = pm2_5 * 4.2
        extra = [nc1 * 0.71, nc1, nc1 * 1.12, nc1 * 1.146, nc1 * 1.15]
        pm = [values.get(name) or 0.0 for name in _PM]
        self.reply([round(v * 10.0) for v in (*pm, *extra)] + [600])

    def _fan_cleaning(self, words: list[int]) -> None:
        self.expect(words, 0)
        if self.state == MEASURING:  # does nothing in any other state
            self._cleaning_until = self.clock() + self._cleaning_s

    def _temperature_offset(self, words: list[int]) -> None:
        if not words:
            self.reply(list(self.temperature_offset))
            return
        self.expect(words, 3)
        self.temperature_offset = (words[0], words[1], words[2])

    def _auto_cleaning(self, words: list[int]) -> None:
        if not words:
            interval = self.auto_cleaning_interval_s
            self.reply([interval >> 16, interval & 0xFFFF])
            return
        self.expect(words, 2)
        self.auto_cleaning_interval_s = words[0] << 16 | words[1]

    def _product_name(self, words: list[int]) -> None:
        self.expect(words, 0)
        self.reply(ascii_words(self.model.upper(), 32))

    def _serial(self, words: list[int]) -> None:
        self.expect(words, 0)
        self.reply(ascii_words(self.serial, 32))

    def _version(self, words: list[int]) -> None:
        """Firmware major, minor, debug flag, hardware 4.0, protocol 1.0, padding."""
        self.expect(words, 0)
        raw = bytes([*self.firmware, 0, 4, 0, 1, 0, 0])
        self.reply([int.from_bytes(raw[i:i + 2], "big") for i in range(0, 8, 2)])

    def _read_status(self, words: list[int]) -> None:
        self.expect(words, 0)
        self.reply(self._status_words)

    def _read_clear_status(self, words: list[int]) -> None:
        self.expect(words, 0)
        self.reply(self._status_words())
        self.status &= ~_STATUS_ERROR_BITS

    def _reset(self, words: list[int]) -> None:
        self.expect(words, 0)
        self._power_on_state()

    # -- internals --------------------------------------------------------------------
    def _power_on_state(self) -> None:
        self.state, self.status = IDLE, 0
        self.temperature_offset = (0, 0, 0)
        self._cleaning_until = -math.inf
        self.clear_reply()

    def _begin(self, state: str) -> None:
        if self.state != IDLE:
            return  # only available in idle mode; otherwise no effect
        self.state = state
        self._t0, self._consumed = self.clock(), 0

    def _index(self) -> int:
        return int((self.clock() - self._t0) / self._period) if self.state != IDLE else 0

    def _cleaning(self) -> bool:
        return self.clock() < self._cleaning_until

    def _ready(self) -> bool:
        return not self._cleaning() and self._index() > self._consumed

    def _status_words(self) -> list[int]:
        status = self.status | (_STATUS_FAN_CLEANING if self._cleaning() else 0)
        return [status >> 16, status & 0xFFFF]

    def _sample(self) -> dict[str, float | None]:
        """Values for a read: advance to a new sample when one is due, mask what is unknown."""
        index = self._index()
        if index == 0:
            return {}
        if index > self._consumed and not self._cleaning():
            self._values = self._derive()
            self._consumed = index
        known = _MODEL_FIELDS[self.model]
        values: dict[str, float | None] = {k: v for k, v in self._values.items() if k in known}
        if self.state == MEASURING_WITHOUT_PM:
            values.update(dict.fromkeys(_PM))
        if self.clock() - self._t0 < self._nox_startup_s:
            values["nox_index"] = None
        return values

    def _derive(self) -> dict[str, float | None]:
        walked = {name: walk.advance(self._rng) for name, walk in self._walks.items()}
        pm2_5 = walked["pm2_5"]
        raw_t = walked["temperature"]
        offset, slope, _ = self.temperature_offset
        # Compensated T = T + slope * T + offset (offset x200, slope x10000 on the wire).
        temperature = raw_t + _signed(slope) / 10000.0 * raw_t + _signed(offset) / 200.0
        values: dict[str, float | None] = {
            "pm1_0": pm2_5 * 0.6, "pm2_5": pm2_5, "pm4_0": pm2_5 * 1.08, "pm10": pm2_5 * 1.12,
            "relative_humidity": walked["relative_humidity"], "temperature": temperature,
            "voc_index": walked["voc_index"], "nox_index": walked["nox_index"],
        }
        values.update(self.pinned)
        return values


def _signed(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


@register("sen50")
def make_sen50(seed: int = 50, sample_period_s: float = 1.0) -> Sen5xDevice:
    """Factory for simulated mode: a SEN50 (PM only)."""
    return Sen5xDevice("sen50", seed=seed, sample_period_s=sample_period_s)


@register("sen54")
def make_sen54(seed: int = 54, sample_period_s: float = 1.0) -> Sen5xDevice:
    """Factory for simulated mode: a SEN54 (PM, RH, T, VOC index)."""
    return Sen5xDevice("sen54", seed=seed, sample_period_s=sample_period_s)


@register("sen55")
def make_sen55(seed: int = 55, sample_period_s: float = 1.0) -> Sen5xDevice:
    """Factory for simulated mode: a SEN55 (PM, RH, T, VOC and NOx index)."""
    return Sen5xDevice("sen55", seed=seed, sample_period_s=sample_period_s)
