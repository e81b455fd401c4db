"""Sensirion SPS30 particulate matter sensor on I2C (address 0x69, SEL pin to GND).

Datasheet: Sensirion "Datasheet SPS30" v1.0 (March 2020), §6 "Operation and
Communication through the I2C Interface". Command codes, delays and status bits
were cross-checked against Sensirion's own drivers (embedded-sps
``sps30-i2c/sps30.h``, python-i2c-sps30 ``commands.py``).

Framing: a 16-bit command (MSB first, no CRC); every 16-bit word that follows,
in either direction, carries a Sensirion CRC-8. Measured values are ten
big-endian IEEE-754 floats (or, on firmware >= 2.0, ten unsigned 16-bit
integers), each word followed by its CRC.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from agent.bus.i2c import I2CDevice
from agent.config.options import DriverOptions
from agent.errors import DataNotReady, NackError, SensorError
from agent.models import Reading
from agent.sensors import register
from agent.sensors._sensirion import (
    SensirionCommand,
    SensirionDriver,
    decode_ascii,
    decode_floats,
    encode_floats,
    encode_words,
    join_words,
    split_uint32,
)
from agent.sensors.base import BusKind

log = logging.getLogger(__name__)

# --- wire constants (datasheet §6.3; delays from Sensirion's drivers) -----------------
_INFO_DELAY_S = 0.005
"""Wait between command and read for serial, firmware, status and auto-cleaning reads."""
_WAKE_DELAY_S = 0.005
_RESET_DELAY_S = 0.100
"""The SPS30 accepts commands again 100 ms after a device reset."""

_START = SensirionCommand(0x0010, "start measurement", 0.020)
_STOP = SensirionCommand(0x0104, "stop measurement", 0.020)
_DATA_READY = SensirionCommand(0x0202, "read data-ready flag", 0.0, 1)
_READ_FLOAT = SensirionCommand(0x0300, "read measured values (float)", 0.0, 20)
_READ_UINT16 = SensirionCommand(0x0300, "read measured values (uint16)", 0.0, 10)
_SLEEP = SensirionCommand(0x1001, "sleep", 0.005)  # firmware >= 2.0, idle only
_WAKE_UP = SensirionCommand(0x1103, "wake-up")  # firmware >= 2.0, sent twice
_FAN_CLEANING = SensirionCommand(0x5607, "start fan cleaning", 0.005)
_GET_AUTO_CLEAN = SensirionCommand(0x8004, "read auto-cleaning interval", _INFO_DELAY_S, 2)
_SET_AUTO_CLEAN = SensirionCommand(0x8004, "write auto-cleaning interval", 0.020)
_SERIAL = SensirionCommand(0xD033, "read serial number", _INFO_DELAY_S, 16)
_FIRMWARE = SensirionCommand(0xD100, "read firmware version", _INFO_DELAY_S, 1)
_STATUS = SensirionCommand(0xD206, "read device status register", _INFO_DELAY_S, 2)  # fw >= 2.2
_RESET = SensirionCommand(0xD304, "device reset")

_FORMATS = {"float": 0x0300, "uint16": 0x0500}
"""Start-measurement argument: big-endian IEEE-754 floats, or (firmware >= 2.0) unsigned
16-bit integers."""

# Device status register bits (datasheet §4.4; embedded-sps sps30.h).
_STATUS_FAN_SPEED_WARNING = 1 << 21
_STATUS_LASER_ERROR = 1 << 5
_STATUS_FAN_ERROR = 1 << 4

_MIN_SLEEP_FIRMWARE = (2, 0)
"""Sleep, wake-up and the uint16 output format need firmware 2.0."""
_MIN_STATUS_FIRMWARE = (2, 2)
"""The device status register needs firmware 2.2."""

QUANTITIES: tuple[str, ...] = (
    "pm1_0", "pm2_5", "pm4_0", "pm10",
    "nc0_5", "nc1_0", "nc2_5", "nc4_0", "nc10",
    "typical_particle_size",
)


# --- pure encode/parse ----------------------------------------------------------------
def encode_start(output: Literal["float", "uint16"] = "float") -> bytes:
    """Start-measurement write: ``00 10 03 00 AC`` (float) or ``00 10 05 00 F6`` (uint16)."""
    return _START.encode(_FORMATS[output])


def encode_auto_cleaning_interval(seconds: int) -> bytes:
    """Auto-cleaning interval write: uint32 seconds as two words, most significant first."""
    return _SET_AUTO_CLEAN.encode(*split_uint32(seconds))


def parse_data_ready(data: bytes) -> bool:
    """One word: 0x0000 no new measurement, 0x0001 new measurement ready."""
    return _DATA_READY.interpret(data)[0] == 0x0001


def encode_float_values(values: Sequence[float]) -> bytes:
    """Ten values framed as the sensor sends them in float format."""
    return encode_floats(values)


def parse_float_values(data: bytes) -> tuple[float, ...]:
    """Ten big-endian IEEE-754 floats: PM1/2.5/4/10 ug/m3, NC0.5/1/2.5/4/10 #/cm3, size um."""
    return decode_floats(data, len(QUANTITIES), what=_READ_FLOAT.name)


def encode_uint16_values(values: Sequence[float]) -> bytes:
    """Ten values framed in uint16 format (typical size given in um, sent in nm)."""
    return encode_words([round(v) for v in values[:-1]] + [round(values[-1] * 1000.0)])


def parse_uint16_values(data: bytes) -> tuple[float, ...]:
    """Ten uint16: mass in ug/m3 and number in #/cm3 unscaled, typical size in nm."""
    words = _READ_UINT16.interpret(data)
    # Typical particle size arrives in nm: um = nm / 1000.
    return (*(float(w) for w in words[:-1]), words[-1] / 1000.0)


def parse_firmware(data: bytes) -> tuple[int, int]:
    """One word: major version in the MSB, minor in the LSB (``02 02 3A`` = 2.2)."""
    word = _FIRMWARE.interpret(data)[0]
    return word >> 8, word & 0xFF


def parse_serial(data: bytes) -> str:
    """Up to 32 NUL-terminated ASCII characters in 16 words."""
    return decode_ascii(_SERIAL.interpret(data))


def parse_uint32(data: bytes) -> int:
    """Two words, most significant first (status register, auto-cleaning interval)."""
    return join_words(_STATUS.interpret(data))


# --- driver -----------------------------------------------------------------------------
class Sps30Options(DriverOptions):
    """Settings of one SPS30."""

    output: Literal['float', 'uint16'] = Field(
        default="float", description="Wire format of the values: ``float`` (all firmware) or "
        "``uint16`` (firmware >= 2.0, integer ug/m3 and #/cm3; coarser but half the bytes).")
    auto_cleaning_interval_s: int | None = Field(
        default=None, description="Fan auto-cleaning interval in seconds (0 disables; factory "
        "default 604800 = 1 week). ``None`` leaves the device's setting alone, so no flash write "
        "happens at start.")
    sleep_between: bool = Field(
        default=False, description="Let the sampler put the sensor to sleep between readings "
        "(firmware >= 2.0) to save fan and laser life; on older firmware it only stops measuring.")

    @model_validator(mode="after")
    def _check(self) -> Sps30Options:
        if self.output not in ("float", "uint16"):
            raise ValueError(f"output must be 'float' or 'uint16', not {self.output!r}")
        interval = self.auto_cleaning_interval_s
        if interval is not None and not 0 <= interval <= 0xFFFFFFFF:
            raise ValueError("auto_cleaning_interval_s must fit in 32 bits and be >= 0")
        return self


@register("sps30", bus=BusKind.I2C, options=Sps30Options)
class Sps30(SensirionDriver):
    """SPS30 on I2C: continuous measurement, one new sample per second."""

    model: ClassVar[str] = "sps30"
    quantities: ClassVar[tuple[str, ...]] = QUANTITIES

    def __init__(self, bus: I2CDevice, options: Sps30Options) -> None:
        self._bus = bus
        self._options = options
        self._firmware: tuple[int, int] | None = None
        self._asleep = False

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> None:
        """Wake (a previous run may have left it asleep), stop, configure, start measuring."""
        self._wake_up()
        self._stop_quietly()
        firmware = self._read_firmware(cached=False)
        if self._options.output == "uint16" and firmware < _MIN_SLEEP_FIRMWARE:
            raise SensorError(f"SPS30 firmware {firmware[0]}.{firmware[1]} has no uint16 output "
                              "(needs 2.0); set output = 'float'")
        if self._options.auto_cleaning_interval_s is not None:
            # The interval lives in flash: written only when it differs.
            self._ensure(_GET_AUTO_CLEAN, _SET_AUTO_CLEAN,
                         split_uint32(self._options.auto_cleaning_interval_s),
                         "auto-cleaning interval")
        self._start_measurement()

    def read(self) -> list[Reading]:
        """Newest sample; DataNotReady when the device has none since the last read."""
        if not self._query(_DATA_READY, parse_data_ready):
            raise DataNotReady("SPS30 has no new measurement yet")
        if self._firmware is not None and self._firmware >= _MIN_STATUS_FIRMWARE:
            self._check_status()
        if self._options.output == "float":
            values = self._query(_READ_FLOAT, parse_float_values)
        else:
            values = self._query(_READ_UINT16, parse_uint16_values)
        return [Reading(name, value) for name, value in zip(QUANTITIES, values, strict=True)
                if math.isfinite(value)]

    def reset(self) -> None:
        """Device reset (same state as power-up), then the full start sequence again."""
        self._wake_up()
        self._send(_RESET)
        self._bus.clock.sleep(_RESET_DELAY_S)
        self.start()

    def stop(self) -> None:
        """Stop measuring and, where the firmware allows, sleep (fan and laser off)."""
        if self._asleep:
            return  # its interface is off; it answers nothing until woken
        self._send(_STOP)
        if self._read_firmware() >= _MIN_SLEEP_FIRMWARE:
            self._send(_SLEEP)
            self._asleep = True

    # -- DutyCycled ------------------------------------------------------------------
    def sleep(self) -> None:
        """Sleep between readings when ``sleep_between`` is set; otherwise keep measuring."""
        if self._options.sleep_between:
            self.stop()

    def wake(self) -> None:
        """Wake and restart measuring; the first new sample follows about 1 s later."""
        if self._options.sleep_between:
            self._wake_up()
            self._start_measurement()

    # -- extras ----------------------------------------------------------------------
    def fan_cleaning(self) -> None:
        """Run the fan at full speed for about 10 s; only accepted while measuring."""
        self._send(_FAN_CLEANING)

    def identify(self) -> dict[str, str]:
        """Serial number and firmware version; changes nothing on the device."""
        serial = self._query(_SERIAL, parse_serial)
        major, minor = self._read_firmware(cached=False)
        return {"serial": serial, "firmware": f"{major}.{minor}"}

    # -- helpers ---------------------------------------------------------------------
    def _wake_up(self) -> None:
        """Two wake-up writes: a sleeping SPS30 NACKs the first, which only enables its
        interface; the second (within 100 ms) wakes it. An awake device or firmware < 2.0
        may refuse both, so NACKs are ignored here and surface on the next command."""
        for _ in range(2):
            try:
                self._send(_WAKE_UP)
            except NackError:
                continue
        self._bus.clock.sleep(_WAKE_DELAY_S)
        self._asleep = False

    def _stop_quietly(self) -> None:
        """Stop any running measurement; an idle device may refuse, which is fine."""
        try:
            self._send(_STOP)
        except NackError:
            log.debug("SPS30 refused stop (already idle)")

    def _start_measurement(self) -> None:
        self._send(_START, _FORMATS[self._options.output])

    def _check_status(self) -> None:
        status = self._query(_STATUS, parse_uint32)
        if status & _STATUS_FAN_ERROR:
            raise SensorError(f"SPS30 fan error: fan on but not turning (status 0x{status:08x})")
        if status & _STATUS_LASER_ERROR:
            raise SensorError(f"SPS30 laser error: current out of range (status 0x{status:08x})")
        if status & _STATUS_FAN_SPEED_WARNING:
            log.warning("SPS30 fan speed out of range (status 0x%08x)", status)

    def _read_firmware(self, *, cached: bool = True) -> tuple[int, int]:
        if self._firmware is None or not cached:
            self._firmware = self._query(_FIRMWARE, parse_firmware)
        return self._firmware
