"""Sensirion SHT3x-DIS (SHT30/SHT31/SHT35) temperature and humidity sensor over I2C.

Datasheet: Sensirion "Datasheet SHT3x-DIS", version 5 (May 2018): §4.3 single shot
commands (table 9), §4.9 soft reset, §4.10 heater (table 16), §4.11 status register
(tables 17/18), §4.12 CRC-8 (table 20), §4.13 conversion formulas. The serial number
command 0x3780 comes from Sensirion's embedded-sht driver (``sht3x.c``).

The driver uses single-shot measurements *without* clock stretching: the Raspberry Pi's
I2C controller handles stretching badly, and the datasheet lets the host poll instead
(the chip NACKs the read header until the conversion is done). We simply wait the
maximum conversion time, then read once.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from agent.bus.i2c import I2CDevice
from agent.config.options import DriverOptions
from agent.errors import CrcError, NackError
from agent.models import Reading
from agent.sensors import register
from agent.sensors._sensirion import (
    SensirionCommand,
    SensirionDriver,
    decode_reply,
    encode_words,
    join_words,
)
from agent.sensors.base import BusKind

# Maximum measurement durations (datasheet timing table, t_MEAS max), in ms.
_MEASURE_MS = {"high": 15.0, "medium": 6.0, "low": 4.0}
_SOFT_RESET_MS = 2.0  # t_SR is 1.5 ms max; a little slack
_COMMAND_MS = 1.0  # minimal wait between a command and the next transaction (table 9 note)

# 16-bit commands, MSB first; the chip never expects a CRC after a command code.
_MEASURE_CODES = {"high": 0x2400, "medium": 0x240B, "low": 0x2416}
"""Single shot, clock stretching disabled (datasheet table 9)."""
_MEASURE = {repeatability: SensirionCommand(code, f"measure, {repeatability} repeatability",
                                            _MEASURE_MS[repeatability] / 1000, 2)
            for repeatability, code in _MEASURE_CODES.items()}
_SOFT_RESET = SensirionCommand(0x30A2, "soft reset", _SOFT_RESET_MS / 1000)
_HEATER_ON = SensirionCommand(0x306D, "heater on", _COMMAND_MS / 1000)
_HEATER_OFF = SensirionCommand(0x3066, "heater off", _COMMAND_MS / 1000)
_READ_STATUS = SensirionCommand(0xF32D, "read status", _COMMAND_MS / 1000, 1)
_CLEAR_STATUS = SensirionCommand(0x3041, "clear status", _COMMAND_MS / 1000)
# Sensirion's electronic identification note lists two serial-number commands: 0x3682
# without clock stretching (tried first: the Raspberry Pi's I2C controller mishandles
# stretching) and 0x3780 with it (what older drivers use; the fallback).
_READ_SERIAL = SensirionCommand(0x3682, "read serial number", _COMMAND_MS / 1000, 2)
_READ_SERIAL_STRETCHED = SensirionCommand(0x3780, "read serial number (stretching)",
                                          _COMMAND_MS / 1000, 2)

STATUS_HEATER_ON = 1 << 13
STATUS_RESET_DETECTED = 1 << 4
STATUS_COMMAND_FAILED = 1 << 1
STATUS_WRITE_CRC_FAILED = 1 << 0

Repeatability = Literal["high", "medium", "low"]


def encode_command(code: int) -> bytes:
    """A 16-bit command as sent on the wire (MSB first, no CRC)."""
    return SensirionCommand(code, f"0x{code:04x}").encode()


def encode_word(value: int) -> bytes:
    """A 16-bit argument word followed by its CRC, as a host must send it."""
    return encode_words([value])


def parse_words(data: bytes, count: int) -> list[int]:
    """Split ``count`` (word, CRC) triplets, checking every CRC.

    Raises FrameError on a wrong length and CrcError (with the raw bytes) on the
    first word whose CRC does not match.
    """
    return decode_reply(data, count, what="SHT reply")


def convert_temperature(raw: int) -> float:
    """°C from a raw temperature word: T = -45 + 175 · S_T / (2^16 - 1) (datasheet §4.13)."""
    return -45.0 + 175.0 * raw / 65535.0


def convert_humidity(raw: int) -> float:
    """%RH from a raw humidity word: RH = 100 · S_RH / (2^16 - 1) (datasheet §4.13)."""
    return 100.0 * raw / 65535.0


def parse_measurement(data: bytes) -> tuple[float, float]:
    """(temperature °C, relative humidity %) from the 6-byte single-shot reply."""
    raw_t, raw_rh = parse_words(data, 2)
    return convert_temperature(raw_t), convert_humidity(raw_rh)


def parse_serial(data: bytes) -> int:
    """The 32-bit serial number from the two-word reply to 0x3682 or 0x3780."""
    return join_words(parse_words(data, 2))


class Sht3xOptions(DriverOptions):
    """Settings for an SHT3x."""

    repeatability: Repeatability = Field(
        default="high", description="Measurement repeatability: high (0.04 %RH, 15 ms), medium (6 "
        "ms) or low (4 ms).")
    heater: bool = Field(
        default=False, description="Switch the on-chip heater on (a few °C of self-heating; for "
        "plausibility checks or to dry a condensed sensor, never for normal readings).")

    @model_validator(mode="after")
    def _check(self) -> Sht3xOptions:
        if self.repeatability not in _MEASURE:
            raise ValueError(f"repeatability must be one of {sorted(_MEASURE)}")
        return self


@register("sht3x", bus=BusKind.I2C, options=Sht3xOptions)
class Sht3x(SensirionDriver):
    """SHT3x in single-shot mode: one measurement command per :meth:`read`."""

    model: ClassVar[str] = "sht3x"
    quantities: ClassVar[tuple[str, ...]] = ("temperature", "relative_humidity")

    def __init__(self, bus: I2CDevice, options: Sht3xOptions) -> None:
        self._bus = bus
        self.options = options

    # -- life cycle ---------------------------------------------------------------
    def start(self) -> None:
        """Soft reset, clear the status flags, and apply the heater setting."""
        self._send(_SOFT_RESET)
        self._send(_CLEAR_STATUS)
        self._send(_HEATER_ON if self.options.heater else _HEATER_OFF)

    def read(self) -> list[Reading]:
        """Trigger one single-shot measurement, wait its maximum duration, read 6 bytes."""
        temperature, humidity = self._query(_MEASURE[self.options.repeatability],
                                            parse_measurement)
        return [Reading("temperature", temperature), Reading("relative_humidity", humidity)]

    def reset(self) -> None:
        """Soft reset and re-apply settings (the heater is off after any reset)."""
        self.start()

    def stop(self) -> None:
        """Switch the heater off; the chip sleeps by itself between single shots."""
        self._send(_HEATER_OFF)

    # -- extras -------------------------------------------------------------------
    def read_status(self) -> int:
        """The 16-bit status register (heater, reset-detected, command/CRC failure bits)."""
        return self._words(_READ_STATUS)[0]

    def identify(self) -> dict[str, str]:
        """Serial number and status register; neither read changes any setting."""
        try:
            serial = self._query(_READ_SERIAL, parse_serial)
        except (NackError, CrcError):
            serial = self._query(_READ_SERIAL_STRETCHED, parse_serial)
        status = self.read_status()
        return {"serial": f"{serial:08x}", "status": f"0x{status:04x}"}
