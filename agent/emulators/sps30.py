"""Emulated Sensirion SPS30 on I2C: the chip's side of the wire protocol.

Models the device's states (sleep, idle, measuring), a data-ready flag latched
once per measurement interval on a monotonic clock, the sleep quirk where the
first wake-up write is NACKed and only enables the interface for 100 ms, and
the chip's checks (argument CRCs, unknown commands, firmware-gated commands).
Fault injection: corrupt CRCs, NACKs, a stuck data-ready flag (from
:class:`~agent.emulators._sensirion.SensirionDevice`), status bits.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from enum import IntEnum

from agent.clock import SYSTEM
from agent.emulators import register
from agent.emulators._sensirion import (
    IDLE,
    MEASURING,
    Handler,
    SensirionDevice,
    ascii_words,
    float_words,
)
from agent.emulators._walk import Walk
from agent.emulators.i2c_bus import Nack

QUANTITIES = ("pm1_0", "pm2_5", "pm4_0", "pm10", "nc0_5", "nc1_0", "nc2_5", "nc4_0", "nc10",
              "typical_particle_size")

SLEEP = "sleep"
_WAKE_UP = b"\x11\x03"
_WAKE_WINDOW_S = 0.1  # interface stays enabled this long after the first wake-up write


class Sps30Command(IntEnum):
    """The SPS30 datasheet's I2C commands, by name."""

    START = 0x0010
    STOP = 0x0104
    DATA_READY = 0x0202
    READ_VALUES = 0x0300
    SLEEP = 0x1001
    WAKE_UP = 0x1103
    FAN_CLEANING = 0x5607
    AUTO_CLEANING_INTERVAL = 0x8004
    PRODUCT_TYPE = 0xD002
    SERIAL_NUMBER = 0xD033
    FIRMWARE_VERSION = 0xD100
    READ_STATUS = 0xD206
    CLEAR_STATUS = 0xD210
    RESET = 0xD304


class Sps30Device(SensirionDevice):
    """An SPS30 with plausible, slowly varying values; ``values`` pins any of them."""

    rereadable = True  # a command sets the read pointer; its data can be read again

    def __init__(self, *, seed: int = 30, values: Mapping[str, float] | None = None,
                 firmware: tuple[int, int] = (2, 2), serial: str = "3E5F0A1B2C3D4E5F",
                 auto_cleaning_interval_s: int = 604800, asleep: bool = False,
                 sample_period_s: float = 1.0, cleaning_s: float = 10.0,
                 clock: Callable[[], float] = SYSTEM.monotonic) -> None:
        super().__init__(clock)
        if sample_period_s <= 0:
            raise ValueError("sample_period_s must be positive")
        unknown = set(values or {}) - set(QUANTITIES)
        if unknown:
            raise ValueError(f"unknown SPS30 quantities {sorted(unknown)}")
        self.firmware = firmware
        self.serial = serial
        self.status = 0
        """Device status register (bit 4 fan error, bit 5 laser error, bit 21 fan speed)."""
        self.state = SLEEP if asleep else IDLE
        self.output_format = 0x0300
        self.pinned = dict(values or {})
        self._rng = random.Random(seed)
        self._pm = Walk(8.0, 0.5, 300.0, 0.05, multiplicative=True)
        self._size = Walk(0.6, 0.35, 2.0, 0.03, multiplicative=True)
        self._values = self._derive()
        self._period = sample_period_s
        self._cleaning_s = cleaning_s
        self._auto_clean = auto_cleaning_interval_s
        self._auto_clean_reported = auto_cleaning_interval_s
        self._t0 = 0.0
        self._consumed = 0
        self._cleaning_until = -math.inf
        self._wake_until = -math.inf

    # -- test helpers -----------------------------------------------------------------
    def power_cycle(self) -> None:
        """Power loss and return: idle, default output, status cleared."""
        self._power_on_state()

    @property
    def auto_cleaning_interval_s(self) -> int:
        return self._auto_clean

    # -- protocol ---------------------------------------------------------------------
    def handlers(self) -> dict[int, Handler]:
        return {
            Sps30Command.START: self._start, Sps30Command.STOP: self._stop,
            Sps30Command.DATA_READY: self._data_ready, Sps30Command.READ_VALUES: self._read_values,
            Sps30Command.SLEEP: self._sleep, Sps30Command.WAKE_UP: self._wake,
            Sps30Command.FAN_CLEANING: self._fan_cleaning,
            Sps30Command.AUTO_CLEANING_INTERVAL: self._auto_cleaning,
            Sps30Command.PRODUCT_TYPE: self._product_type, Sps30Command.SERIAL_NUMBER: self._serial,
            Sps30Command.FIRMWARE_VERSION: self._firmware, Sps30Command.READ_STATUS: self._status,
            Sps30Command.CLEAR_STATUS: self._clear_status, Sps30Command.RESET: self._reset,
        }

    def before_command(self, data: bytes, now: float) -> None:
        if self.state != SLEEP:
            return
        if data == _WAKE_UP and now <= self._wake_until:
            self.state = IDLE  # the second wake-up write, within the window
            return
        self._wake_until = now + _WAKE_WINDOW_S  # the low pulse enables the interface
        raise Nack("asleep: interface disabled")

    def before_read(self, now: float) -> None:
        if self.state == SLEEP:
            raise Nack("asleep: interface disabled")

    def _start(self, words: list[int]) -> None:
        self.expect(words, 1)
        allowed = {0x0300} | ({0x0500} if self.firmware >= (2, 0) else set())
        if words[0] not in allowed:
            raise Nack(f"unsupported output format 0x{words[0]:04x}")
        if self.state == MEASURING:
            return  # no effect while measuring
        self.state, self.output_format = MEASURING, words[0]
        self._t0, self._consumed = self.clock(), 0

    def _stop(self, words: list[int]) -> None:
        self.expect(words, 0)
        self.state = IDLE
        self._cleaning_until = -math.inf

    def _data_ready(self, words: list[int]) -> None:
        self.expect(words, 0)
        self.reply(lambda: [int(self.report_ready(self._ready()))])

    def _read_values(self, words: list[int]) -> None:
        self.expect(words, 0)
        if self.state != MEASURING:
            raise Nack("read measured values needs measurement mode")
        index = self._index()
        if index == 0:
            values = [0.0] * len(QUANTITIES)
        else:
            if index > self._consumed:
                self._values = self._derive()
            self._consumed = max(self._consumed, index)
            values = [self._values[name] for name in QUANTITIES]
        self.reply(float_words(*values) if self.output_format == 0x0300
                   else self._uint16_words(values))

    def _sleep(self, words: list[int]) -> None:
        self.expect(words, 0)
        if self.firmware < (2, 0) or self.state != IDLE:
            raise Nack("sleep is available in idle mode on firmware >= 2.0")
        self.state = SLEEP
        self._wake_until = -math.inf

    def _wake(self, words: list[int]) -> None:
        self.expect(words, 0)
        if self.firmware < (2, 0):
            raise Nack("wake-up needs firmware >= 2.0")

    def _fan_cleaning(self, words: list[int]) -> None:
        self.expect(words, 0)
        if self.state != MEASURING:
            raise Nack("fan cleaning needs measurement mode")
        self._cleaning_until = self.clock() + self._cleaning_s

    def _auto_cleaning(self, words: list[int]) -> None:
        if not words:
            self.reply([self._auto_clean_reported >> 16, self._auto_clean_reported & 0xFFFF])
            return
        self.expect(words, 2)
        self._auto_clean = words[0] << 16 | words[1]
        if self.firmware >= (2, 2):  # older firmware reports the new value only after reset
            self._auto_clean_reported = self._auto_clean

    def _product_type(self, words: list[int]) -> None:
        self.expect(words, 0)
        self.reply(ascii_words("00080000", 8))

    def _serial(self, words: list[int]) -> None:
        self.expect(words, 0)
        self.reply(ascii_words(self.serial, 32))

    def _firmware(self, words: list[int]) -> None:
        self.expect(words, 0)
        self.reply([self.firmware[0] << 8 | self.firmware[1]])

    def _status(self, words: list[int]) -> None:
        self.expect(words, 0)
        if self.firmware < (2, 2):
            raise Nack("status register needs firmware >= 2.2")
        self.reply(lambda: [self.status >> 16, self.status & 0xFFFF])

    def _clear_status(self, words: list[int]) -> None:
        self.expect(words, 0)
        if self.firmware < (2, 2):
            raise Nack("status register needs firmware >= 2.2")
        self.status = 0

    def _reset(self, words: list[int]) -> None:
        self.expect(words, 0)
        self._power_on_state()

    # -- internals --------------------------------------------------------------------
    def _power_on_state(self) -> None:
        self.state, self.output_format, self.status = IDLE, 0x0300, 0
        self._auto_clean_reported = self._auto_clean
        self._cleaning_until = -math.inf
        self.clear_reply()

    def _index(self) -> int:
        return int((self.clock() - self._t0) / self._period)

    def _ready(self) -> bool:
        return (self.state == MEASURING and self.clock() >= self._cleaning_until
                and self._index() > self._consumed)

    def _derive(self) -> dict[str, float]:
        """One new sample: cumulative bins keep pm1 <= pm2.5 <= pm4 <= pm10 (and NC alike)."""
        pm2_5 = self._pm.advance(self._rng)
        size = self._size.advance(self._rng)
        nc1_0 = pm2_5 * 0.6 * 7.0
        values = {
            "pm1_0": pm2_5 * 0.6, "pm2_5": pm2_5, "pm4_0": pm2_5 * 1.08, "pm10": pm2_5 * 1.12,
            "nc0_5": nc1_0 * 0.71, "nc1_0": nc1_0, "nc2_5": nc1_0 * 1.12,
            "nc4_0": nc1_0 * 1.146, "nc10": nc1_0 * 1.15, "typical_particle_size": size,
        }
        values.update(self.pinned)
        return values

    @staticmethod
    def _uint16_words(values: Sequence[float]) -> list[int]:
        # uint16 format: ug/m3 and #/cm3 as integers, typical size in nm.
        scaled = [*values[:-1], values[-1] * 1000.0]
        return [min(0xFFFF, max(0, round(v))) for v in scaled]


@register("sps30")
def make_sps30(seed: int = 30, sample_period_s: float = 1.0) -> Sps30Device:
    """Factory for simulated mode: an awake SPS30 on firmware 2.2."""
    return Sps30Device(seed=seed, sample_period_s=sample_period_s)
