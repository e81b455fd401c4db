"""Sensirion SHT4x (SHT40/SHT41/SHT43/SHT45) temperature and humidity sensor over I2C.

Datasheet: Sensirion "Datasheet SHT4x", version 6 (February 2023): the command table
(single-byte commands, no CRC on commands), the conversion formulas and the quick-start
pseudo code that clips RH to 0..100 %, the heater section. Waits follow Sensirion's
embedded-i2c-sht4x driver (``sht4x_i2c.c``).

Word framing and the CRC check are the Sensirion ones (:mod:`agent.sensors._sensirion`);
the temperature transfer function is the SHT3x's, so it is imported from
:mod:`agent.sensors.sht3x`.
"""

from __future__ import annotations

import logging
import math
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from agent.bus.i2c import I2CDevice
from agent.config.options import DriverOptions
from agent.errors import CrcError, DataNotReady, FrameError
from agent.models import Reading
from agent.sensors import register
from agent.sensors._sensirion import SensirionCommand, SensirionDriver, decode_reply, join_words
from agent.sensors.base import BusKind
from agent.sensors.sht3x import convert_temperature

log = logging.getLogger(__name__)

Precision = Literal["high", "medium", "low"]
HeaterPulse = Literal["off", "200mw_1s", "200mw_100ms", "110mw_1s", "110mw_100ms",
                      "20mw_1s", "20mw_100ms"]

# Single-byte commands (datasheet command table) with the driver's wait before reading, s.
_BYTE = 1
_MEASURE = {
    "high": SensirionCommand(0xFD, "measure, high precision", 0.010, 2, _BYTE),
    "medium": SensirionCommand(0xF6, "measure, medium precision", 0.005, 2, _BYTE),
    "low": SensirionCommand(0xE0, "measure, low precision", 0.002, 2, _BYTE),
}
_SERIAL = SensirionCommand(0x89, "read serial number", 0.010, 2, _BYTE)
_SOFT_RESET = SensirionCommand(0x94, "soft reset", 0.010, 0, _BYTE)
# A heater command heats for 1 s or 0.1 s, then measures with high precision and
# returns that measurement like a measure command does.
_HEATER = {
    "200mw_1s": SensirionCommand(0x39, "heater 200 mW, 1 s", 1.100, 2, _BYTE),
    "200mw_100ms": SensirionCommand(0x32, "heater 200 mW, 0.1 s", 0.110, 2, _BYTE),
    "110mw_1s": SensirionCommand(0x2F, "heater 110 mW, 1 s", 1.100, 2, _BYTE),
    "110mw_100ms": SensirionCommand(0x24, "heater 110 mW, 0.1 s", 0.110, 2, _BYTE),
    "20mw_1s": SensirionCommand(0x1E, "heater 20 mW, 1 s", 1.100, 2, _BYTE),
    "20mw_100ms": SensirionCommand(0x15, "heater 20 mW, 0.1 s", 0.110, 2, _BYTE),
}
_HEATER_ON_S = {"200mw_1s": 1.0, "200mw_100ms": 0.1, "110mw_1s": 1.0, "110mw_100ms": 0.1,
                "20mw_1s": 1.0, "20mw_100ms": 0.1}
_HEATER_MAX_DUTY = 0.1  # datasheet: keep the heater duty cycle at or below 10 %


def convert_humidity(raw: int) -> float:
    """%RH from a raw word: RH = -6 + 125 · S_RH / 65535, clipped to 0..100 (datasheet).

    The slope and offset differ from the SHT3x's; values outside 0..100 are physically
    impossible and the datasheet's pseudo code crops them.
    """
    return min(100.0, max(0.0, -6.0 + 125.0 * raw / 65535.0))


def parse_measurement(data: bytes) -> tuple[float, float]:
    """(temperature °C, relative humidity %) from the 6-byte measurement reply.

    T = -45 + 175 · S_T / 65535, the SHT3x formula (:func:`convert_temperature`).
    """
    raw_t, raw_rh = decode_reply(data, 2, what="SHT4x measurement")
    return convert_temperature(raw_t), convert_humidity(raw_rh)


def parse_serial(data: bytes) -> int:
    """The 32-bit serial number from the two-word reply to 0x89."""
    return join_words(decode_reply(data, 2, what="SHT4x serial number"))


class Sht4xOptions(DriverOptions):
    """Settings for an SHT4x."""

    precision: Precision = Field(
        default="high", description="Repeatability of each measurement: high (8.3 ms), medium (4.5 "
        "ms) or low (1.6 ms).")
    heater: HeaterPulse = Field(
        default="off", description="Heater pulse used against RH creep after long spells of high "
        "humidity; off by default.")
    heater_interval_s: float = Field(
        default=600.0, description="Seconds between heater pulses at least; raised to keep the "
        "duty cycle ≤ 10 %.")
    heater_min_rh: float = Field(
        default=80.0, description="Only pulse when the reading just taken is at or above this RH "
        "(creep needs damp air), %.")
    heater_cooldown_s: float = Field(
        default=10.0, description="Seconds after a pulse in which readings are skipped "
        "(DataNotReady): the die is still warm.")

    @model_validator(mode="after")
    def _check(self) -> Sht4xOptions:
        if self.precision not in _MEASURE:
            raise ValueError(f"precision must be one of {sorted(_MEASURE)}")
        if self.heater != "off" and self.heater not in _HEATER:
            raise ValueError(f"heater must be 'off' or one of {sorted(_HEATER)}")
        if self.heater_interval_s <= 0 or self.heater_cooldown_s < 0:
            raise ValueError("heater_interval_s must be > 0 and heater_cooldown_s >= 0")
        return self


@register("sht4x", bus=BusKind.I2C, options=Sht4xOptions)
class Sht4x(SensirionDriver):
    """SHT4x: one measurement command per :meth:`read`, optional duty-limited heater pulses."""

    model: ClassVar[str] = "sht4x"
    quantities: ClassVar[tuple[str, ...]] = ("temperature", "relative_humidity")

    def __init__(self, bus: I2CDevice, options: Sht4xOptions) -> None:
        self._bus = bus
        self.options = options
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
        self._send(_SOFT_RESET)

    def read(self) -> list[Reading]:
        """Measure once; then, if due, fire a heater pulse for the *next* reading's sake."""
        if self._bus.clock.monotonic() - self._last_pulse_s < self.options.heater_cooldown_s:
            raise DataNotReady("sht4x: die still warm from the last heater pulse")
        temperature, humidity = self._query(_MEASURE[self.options.precision], parse_measurement)
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
        serial = self._query(_SERIAL, parse_serial)
        return {"serial": f"{serial:08x}"}

    # -- helpers ------------------------------------------------------------------
    def _heater_due(self) -> bool:
        if self.options.heater == "off":
            return False
        return self._bus.clock.monotonic() - self._last_pulse_s >= self.heater_gap_s

    def _pulse_heater(self) -> None:
        """Heat, then read and discard the hot measurement the chip returns."""
        pulse = _HEATER[self.options.heater]
        pulse.send(self._bus)
        self._last_pulse_s = self._bus.clock.monotonic()  # cool-down and gap count from the end
        data = pulse.receive(self._bus)
        try:
            self.checked(parse_measurement, data)  # CRC-checked, then discarded: a hot die
        except (CrcError, FrameError) as exc:
            # The reading already taken is sound; the pulse itself still happened.
            log.warning("sht4x 0x%02x heater reply rejected: %s", self._bus.address, exc)
