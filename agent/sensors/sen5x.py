"""Sensirion SEN5x environmental sensor nodes (SEN50, SEN54, SEN55) on I2C, address 0x69.

Datasheet: Sensirion "Datasheet SEN5x" v2 (2022), §6 "Operation and Communication
through the I2C Interface"; command codes, delays, scalings and the "unknown"
sentinels cross-checked against Sensirion's raspberry-pi-i2c-sen5x ``sen5x_i2c.c``
and python-i2c-sen5x ``response_types.py``.

All three share one command set; they differ in what they carry: the SEN50
measures PM only, the SEN54 adds RH, T and the VOC index (SHT + SGP41), the
SEN55 adds the NOx index. "Read measured values" returns eight words whatever
the model; a quantity the device does not have, or does not know yet, comes as
0xFFFF (uint16) or 0x7FFF (int16) and is omitted here rather than published.
The NOx index is unknown for the first 10-11 s after power-on or reset.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field, model_validator

from agent.bus.i2c import I2CDevice
from agent.config.options import DriverOptions
from agent.errors import DataNotReady, SensorError
from agent.models import NO_FLAGS, Quality, Reading
from agent.sensors import register
from agent.sensors._sensirion import (
    SensirionCommand,
    SensirionDriver,
    decode_ascii,
    encode_words,
    join_words,
    split_uint32,
)
from agent.sensors.base import BusKind

log = logging.getLogger(__name__)

# --- wire constants (datasheet §6.1; delays as in Sensirion's sen5x_i2c.c) ------------
_START = SensirionCommand(0x0021, "start measurement", 0.050)
_STOP = SensirionCommand(0x0104, "stop measurement", 0.200)
_DATA_READY = SensirionCommand(0x0202, "read data-ready flag", 0.020, 1)
_READ_VALUES = SensirionCommand(0x03C4, "read measured values", 0.020, 8)
_FAN_CLEANING = SensirionCommand(0x5607, "start fan cleaning", 0.020)
_GET_TEMP_OFFSET = SensirionCommand(0x60B2, "get temperature offset parameters", 0.020, 3)
_SET_TEMP_OFFSET = SensirionCommand(0x60B2, "set temperature offset parameters", 0.020)
_GET_AUTO_CLEAN = SensirionCommand(0x8004, "get fan auto-cleaning interval", 0.020, 2)
_SET_AUTO_CLEAN = SensirionCommand(0x8004, "set fan auto-cleaning interval", 0.020)
_PRODUCT_NAME = SensirionCommand(0xD014, "get product name", 0.050, 16)
_SERIAL = SensirionCommand(0xD033, "get serial number", 0.050, 16)
_VERSION = SensirionCommand(0xD100, "get version", 0.020, 4)
_STATUS = SensirionCommand(0xD206, "read device status", 0.020, 2)
_RESET = SensirionCommand(0xD304, "device reset", 0.200)

_UINT16_UNKNOWN = 0xFFFF
_INT16_UNKNOWN = 0x7FFF

# Device status bits (datasheet §6.1.24; python-i2c-sen5x Sen5xDeviceStatus).
_STATUS_FAN_SPEED_WARNING = 1 << 21
_STATUS_FAN_CLEANING = 1 << 19
_STATUS_GAS_ERROR = 1 << 7  # SGP41 (VOC/NOx) communication or sensor error
_STATUS_RHT_ERROR = 1 << 6  # SHT (RH/T) communication error
_STATUS_LASER_ERROR = 1 << 5
_STATUS_FAN_ERROR = 1 << 4
_STATUS_ERRORS = {
    _STATUS_FAN_ERROR: "fan error (fan on but not turning)",
    _STATUS_LASER_ERROR: "laser failure (current out of range)",
    _STATUS_RHT_ERROR: "RH/T sensor error",
    _STATUS_GAS_ERROR: "VOC/NOx gas sensor error",
}

_HIGH_HUMIDITY_RH = 90.0
"""Above this RH the optical PM channels over-read (hygroscopic growth)."""

# Frame order, field kind ("u" uint16 / "i" int16) and datasheet scale factor.
_FIELDS: tuple[tuple[str, str, float], ...] = (
    ("pm1_0", "u", 10.0),  # PM1.0 [ug/m3] = value / 10
    ("pm2_5", "u", 10.0),  # PM2.5 [ug/m3] = value / 10
    ("pm4_0", "u", 10.0),  # PM4.0 [ug/m3] = value / 10
    ("pm10", "u", 10.0),  # PM10 [ug/m3] = value / 10
    ("relative_humidity", "i", 100.0),  # RH [%] = value / 100
    ("temperature", "i", 200.0),  # T [degC] = value / 200
    ("voc_index", "i", 10.0),  # VOC index = value / 10
    ("nox_index", "i", 10.0),  # NOx index = value / 10
)
_PM = ("pm1_0", "pm2_5", "pm4_0", "pm10")


# --- pure encode/parse ----------------------------------------------------------------
def parse_measured_values(data: bytes) -> dict[str, float]:
    """The eight words of 0x03C4, scaled; fields at their "unknown" sentinel are left out."""
    values: dict[str, float] = {}
    for (name, kind, scale), word in zip(_FIELDS, _READ_VALUES.interpret(data), strict=True):
        if kind == "u":
            if word != _UINT16_UNKNOWN:
                values[name] = word / scale
        elif word != _INT16_UNKNOWN:
            values[name] = _signed(word) / scale
    return values


def encode_measured_values(values: Mapping[str, float | None]) -> bytes:
    """The reply a device would send; missing or ``None`` quantities become the sentinel."""
    words = []
    for name, kind, scale in _FIELDS:
        value = values.get(name)
        if value is None:
            words.append(_UINT16_UNKNOWN if kind == "u" else _INT16_UNKNOWN)
        else:
            words.append(round(value * scale) & 0xFFFF)
    return encode_words(words)


def parse_data_ready(data: bytes) -> bool:
    """One word: padding byte 0x00, then the flag byte (0x01 = new data)."""
    return bool(_DATA_READY.interpret(data)[0] & 0xFF)


def parse_ascii(data: bytes) -> str:
    """Product name or serial number: up to 32 NUL-terminated ASCII characters."""
    return decode_ascii(_SERIAL.interpret(data))


def parse_version(data: bytes) -> tuple[str, str, str]:
    """Firmware (with ``-debug`` when flagged), hardware and protocol versions."""
    raw = b"".join(w.to_bytes(2, "big") for w in _VERSION.interpret(data))
    firmware = f"{raw[0]}.{raw[1]}" + ("-debug" if raw[2] else "")
    return firmware, f"{raw[3]}.{raw[4]}", f"{raw[5]}.{raw[6]}"


def parse_uint32(data: bytes) -> int:
    """Two words, most significant first (device status, auto-cleaning interval)."""
    return join_words(_STATUS.interpret(data))


def encode_temperature_offset(offset_c: float, slope: float, time_constant_s: int) -> bytes:
    """Offset as int16 x200, slope as int16 x10000, time constant as uint16 seconds."""
    return _SET_TEMP_OFFSET.encode(*_temperature_offset_words(offset_c, slope, time_constant_s))


def parse_temperature_offset(data: bytes) -> tuple[float, float, int]:
    """(offset degC, normalised slope, time constant s) as stored in the device."""
    offset, slope, time_constant = _GET_TEMP_OFFSET.interpret(data)
    return _signed(offset) / 200.0, _signed(slope) / 10000.0, time_constant


def encode_auto_cleaning_interval(seconds: int) -> bytes:
    """Auto-cleaning interval write: uint32 seconds, most significant word first."""
    return _SET_AUTO_CLEAN.encode(*split_uint32(seconds))


def _signed(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


def _temperature_offset_words(offset_c: float, slope: float, time_constant_s: int) -> list[int]:
    return [round(offset_c * 200.0) & 0xFFFF, round(slope * 10000.0) & 0xFFFF, time_constant_s]


# --- driver -----------------------------------------------------------------------------
class Sen5xOptions(DriverOptions):
    """Settings of one SEN5x; each ``None`` leaves the device's own setting alone."""

    auto_cleaning_interval_s: int | None = Field(
        default=None, description="Fan auto-cleaning interval in seconds (0 disables; factory "
        "default 604800 = 1 week).")
    temperature_offset_c: float | None = Field(
        default=None, description="Constant temperature offset in degC for the enclosure's "
        "self-heating (SEN54/SEN55); the device reports T + slope * T + offset. Volatile: "
        "re-applied at every start.")
    temperature_offset_slope: float = Field(
        default=0.0, description="Normalised temperature-dependent offset slope (only with "
        "temperature_offset_c).")
    temperature_offset_time_constant_s: int = Field(
        default=0, description="Seconds over which a new offset fades in (63 %); 0 applies it at "
        "once.")

    @model_validator(mode="after")
    def _check(self) -> Sen5xOptions:
        interval = self.auto_cleaning_interval_s
        if interval is not None and not 0 <= interval <= 0xFFFFFFFF:
            raise ValueError("auto_cleaning_interval_s must fit in 32 bits and be >= 0")
        offset = self.temperature_offset_c
        if offset is not None and not -163.8 <= offset <= 163.8:
            raise ValueError("temperature_offset_c must lie within +-163.8 degC (int16 / 200)")
        if not -3.2768 <= self.temperature_offset_slope <= 3.2767:
            raise ValueError("temperature_offset_slope must lie within +-3.2767 (int16 / 10000)")
        if not 0 <= self.temperature_offset_time_constant_s <= 0xFFFF:
            raise ValueError("temperature_offset_time_constant_s must be 0..65535")
        return self


class Sen5x(SensirionDriver):
    """Common driver of the SEN5x family; the registered subclasses name the model."""

    model: ClassVar[str] = "sen5x"
    quantities: ClassVar[tuple[str, ...]] = tuple(name for name, _, _ in _FIELDS)

    def __init__(self, bus: I2CDevice, options: Sen5xOptions) -> None:
        self._bus = bus
        self._options = options

    @property
    def _has_rht(self) -> bool:
        return "temperature" in self.quantities

    def start(self) -> None:
        """Stop any running measurement, apply settings that differ, start measuring."""
        self._send(_STOP)
        product = self._query(_PRODUCT_NAME, parse_ascii)
        if product.upper() != self.model.upper():
            log.warning("configured as %s but the device calls itself %r", self.model, product)
        opts = self._options
        if opts.auto_cleaning_interval_s is not None:
            self._ensure(_GET_AUTO_CLEAN, _SET_AUTO_CLEAN,
                         split_uint32(opts.auto_cleaning_interval_s), "auto-cleaning interval")
        if opts.temperature_offset_c is not None:
            if self._has_rht:
                # Offsets are volatile (lost at power-off): compared and written at every start.
                self._ensure(_GET_TEMP_OFFSET, _SET_TEMP_OFFSET, _temperature_offset_words(
                    opts.temperature_offset_c, opts.temperature_offset_slope,
                    opts.temperature_offset_time_constant_s), "temperature offset words")
            else:
                log.warning("%s has no temperature sensor; temperature offset ignored", self.model)
        self._send(_START)

    def read(self) -> list[Reading]:
        """The newest values this model carries; unknown ones are left out."""
        if not self._query(_DATA_READY, parse_data_ready):
            raise DataNotReady(f"{self.model} has no new measurement yet")
        self._check_status()
        values = self._query(_READ_VALUES, parse_measured_values)
        humid = values.get("relative_humidity", 0.0) >= _HIGH_HUMIDITY_RH
        readings = [
            Reading(name, values[name],
                    frozenset({Quality.HIGH_HUMIDITY}) if humid and name in _PM else NO_FLAGS)
            for name in self.quantities if name in values
        ]
        if not readings:
            raise DataNotReady(f"{self.model} reports every value as unknown (just started?)")
        return readings

    def reset(self) -> None:
        """Device reset (as a power cycle; clears sticky error flags), then start again."""
        self._send(_RESET)
        self.start()

    def stop(self) -> None:
        """Back to idle: fan, laser and gas heater off."""
        self._send(_STOP)

    def fan_cleaning(self) -> None:
        """Run the fan at full speed for about 10 s; only while measuring with PM."""
        self._send(_FAN_CLEANING)

    def identify(self) -> dict[str, str]:
        """Product name, serial number and versions; changes nothing on the device."""
        firmware, hardware, _protocol = self._query(_VERSION, parse_version)
        return {
            "product": self._query(_PRODUCT_NAME, parse_ascii),
            "serial": self._query(_SERIAL, parse_ascii),
            "firmware": firmware,
            "hardware": hardware,
        }

    # -- helpers ---------------------------------------------------------------------
    def _check_status(self) -> None:
        """Error flags are sticky until a reset; the fan-speed warning only warns."""
        status = self._query(_STATUS, parse_uint32)
        for bit, meaning in _STATUS_ERRORS.items():
            if status & bit:
                raise SensorError(f"{self.model} {meaning} (status 0x{status:08x})")
        if status & _STATUS_FAN_SPEED_WARNING:
            log.warning("%s fan speed out of range (status 0x%08x)", self.model, status)


@register("sen50", bus=BusKind.I2C, options=Sen5xOptions)
class Sen50(Sen5x):
    """SEN50: PM1.0, PM2.5, PM4.0, PM10 only."""

    model: ClassVar[str] = "sen50"
    quantities: ClassVar[tuple[str, ...]] = _PM


@register("sen54", bus=BusKind.I2C, options=Sen5xOptions)
class Sen54(Sen5x):
    """SEN54: PM plus relative humidity, temperature and the VOC index."""

    model: ClassVar[str] = "sen54"
    quantities: ClassVar[tuple[str, ...]] = (*_PM, "relative_humidity", "temperature", "voc_index")


@register("sen55", bus=BusKind.I2C, options=Sen5xOptions)
class Sen55(Sen5x):
    """SEN55: everything the SEN54 has plus the NOx index."""

    model: ClassVar[str] = "sen55"
    quantities: ClassVar[tuple[str, ...]] = (
        *_PM, "relative_humidity", "temperature", "voc_index", "nox_index")
