"""Sensirion SHT4x (SHT40/SHT41/SHT43/SHT45) temperature and humidity sensor over I2C.

Datasheet: Sensirion "Datasheet SHT4x", version 6 (February 2023): the command table
(single-byte commands, no CRC on commands), the conversion formulas and the quick-start
pseudo code that clips RH to 0..100 %, the heater section. Waits follow Sensirion's
embedded-i2c-sht4x driver (``sht4x_i2c.c``).

Word framing and the CRC check are shared with the SHT3x (same CRC-8, same
``word + CRC`` layout), so they are imported from :mod:`agent.sensors.sht3x`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal, TypeVar

from agent.bus.i2c import I2CDevice
from agent.errors import CrcError, DataNotReady, FrameError
from agent.models import Reading
from agent.sensors import register
from agent.sensors.base import BusKind
from agent.sensors.sht3x import parse_words

log = logging.getLogger(__name__)
T = TypeVar("T")

Precision = Literal["high", "medium", "low"]
HeaterPulse = Literal["off", "200mw_1s", "200mw_100ms", "110mw_1s", "110mw_100ms",
                      "20mw_1s", "20mw_100ms"]

# Single-byte commands (datasheet command table) with the driver's wait before reading, ms.
_CMD_MEASURE = {"high": (0xFD, 10.0), "medium": (0xF6, 5.0), "low": (0xE0, 2.0)}
_CMD_SERIAL = (0x89, 10.0)
_CMD_SOFT_RESET = (0x94, 10.0)
# A heater command heats for 1 s or 0.1 s, then measures with high precision and
# returns that measurement like a measure command does.
_CMD_HEATER = {
    "200mw_1s": (0x39, 1100.0), "200mw_100ms": (0x32, 110.0),
    "110mw_1s": (0x2F, 1100.0), "110mw_100ms": (0x24, 110.0),
    "20mw_1s": (0x1E, 1100.0), "20mw_100ms": (0x15, 110.0),
}
_HEATER_ON_S = {"200mw_1s": 1.0, "200mw_100ms": 0.1, "110mw_1s": 1.0, "110mw_100ms": 0.1,
                "20mw_1s": 1.0, "20mw_100ms": 0.1}
_HEATER_MAX_DUTY = 0.1  # datasheet: keep the heater duty cycle at or below 10 %


def convert_temperature(raw: int) -> float:
    """°C from a raw word: T = -45 + 175 · S_T / 65535 (datasheet conversion formula)."""
    return -45.0 + 175.0 * raw / 65535.0


def convert_humidity(raw: int) -> float:
    """%RH from a raw word: RH = -6 + 125 · S_RH / 65535, clipped to 0..100 (datasheet).

    The slope and offset differ from the SHT3x's; values outside 0..100 are physically
    impossible and the datasheet's pseudo code crops them.
    """
    return min(100.0, max(0.0, -6.0 + 125.0 * raw / 65535.0))


def parse_measurement(data: bytes) -> tuple[float, float]:
    """(temperature °C, relative humidity %) from the 6-byte measurement reply."""
    raw_t, raw_rh = parse_words(data, 2)
    return convert_temperature(raw_t), convert_humidity(raw_rh)


def parse_serial(data: bytes) -> int:
    """The 32-bit serial number from the two-word reply to 0x89."""
    high, low = parse_words(data, 2)
    return (high << 16) | low


@dataclass(frozen=True)
class Sht4xOptions:
    """Settings for an SHT4x."""

    precision: Precision = "high"
    """Repeatability of each measurement: high (8.3 ms), medium (4.5 ms) or low (1.6 ms)."""
    heater: HeaterPulse = "off"
    """Heater pulse used against RH creep after long spells of high humidity; off by default."""
    heater_interval_s: float = 600.0
    """Seconds between heater pulses at least; raised to keep the duty cycle ≤ 10 %."""
    heater_min_rh: float = 80.0
    """Only pulse when the reading just taken is at or above this RH (creep needs damp air), %."""
    heater_cooldown_s: float = 10.0
    """Seconds after a pulse in which readings are skipped (DataNotReady): the die is still warm."""

    def __post_init__(self) -> None:
        if self.precision not in _CMD_MEASURE:
            raise ValueError(f"precision must be one of {sorted(_CMD_MEASURE)}")
        if self.heater != "off" and self.heater not in _CMD_HEATER:
            raise ValueError(f"heater must be 'off' or one of {sorted(_CMD_HEATER)}")
        if self.heater_interval_s <= 0 or self.heater_cooldown_s < 0:
            raise ValueError("heater_interval_s must be > 0 and heater_cooldown_s >= 0")


@register("sht4x", bus=BusKind.I2C, options=Sht4xOptions)
class Sht4x:
    """SHT4x: one measurement command per :meth:`read`, optional duty-limited heater pulses."""

    model: ClassVar[str] = "sht4x"
    quantities: ClassVar[tuple[str, ...]] = ("temperature", "relative_humidity")

    def __init__(self, bus: I2CDevice, options: Sht4xOptions) -> None:
        self.bus = bus
        self.options = options
        self.frames_rejected = 0
        self._last_pulse_s = -math.inf

    @property
    def heater_gap_s(self) -> float:
        """Effective minimum time between pulses: the option, but never above 10 % duty."""
        if self.options.heater == "off":
            return math.inf
        on_s = _HEATER_ON_S[self.options.heater]
        return max(self.options.heater_interval_s, on_s / _HEATER_MAX_DUTY)

    # -- life cycle ---------------------------------------------------------------
    def start(self) -> None:
        """Soft reset; the SHT4x has no other state to configure."""
        self._command(*_CMD_SOFT_RESET)

    def read(self) -> list[Reading]:
        """Measure once; then, if due, fire a heater pulse for the *next* reading's sake."""
        if time.monotonic() - self._last_pulse_s < self.options.heater_cooldown_s:
            raise DataNotReady("sht4x: die still warm from the last heater pulse")
        code, wait_ms = _CMD_MEASURE[self.options.precision]
        self._command(code, wait_ms)
        data = self.bus.read(6)
        log.debug("sht4x 0x%02x measurement %s", self.bus.address, data.hex(" "))
        temperature, humidity = self._parse(parse_measurement, data)
        if humidity >= self.options.heater_min_rh and self._heater_due():
            self._pulse_heater()
        return [Reading("temperature", temperature), Reading("relative_humidity", humidity)]

    def reset(self) -> None:
        """Soft reset (0x94)."""
        self.start()

    def stop(self) -> None:
        """Nothing to stop: the SHT4x idles at 80 nA between single measurements."""

    def identify(self) -> dict[str, str]:
        """The 32-bit serial number (reading it changes nothing)."""
        self._command(*_CMD_SERIAL)
        serial = self._parse(parse_serial, self.bus.read(6))
        return {"serial": f"{serial:08x}"}

    # -- helpers ------------------------------------------------------------------
    def _heater_due(self) -> bool:
        if self.options.heater == "off":
            return False
        return time.monotonic() - self._last_pulse_s >= self.heater_gap_s

    def _pulse_heater(self) -> None:
        """Heat, then read and discard the hot measurement the chip returns."""
        code, wait_ms = _CMD_HEATER[self.options.heater]
        self._command(code, wait_ms)
        self._last_pulse_s = time.monotonic()  # cool-down and duty gap count from the end
        data = self.bus.read(6)
        log.debug("sht4x 0x%02x heater pulse %s reply %s", self.bus.address,
                  self.options.heater, data.hex(" "))
        try:
            self._parse(parse_measurement, data)  # CRC-checked, then discarded: a hot die
        except (CrcError, FrameError) as exc:
            # The reading already taken is sound; the pulse itself still happened.
            log.warning("sht4x 0x%02x heater reply rejected: %s", self.bus.address, exc)

    def _command(self, code: int, wait_ms: float) -> None:
        self.bus.write(bytes([code]))
        time.sleep(wait_ms / 1000.0)

    def _parse(self, parse: Callable[[bytes], T], data: bytes) -> T:
        try:
            return parse(data)
        except (CrcError, FrameError):
            self.frames_rejected += 1
            raise
