"""Bosch BME280 (temperature, humidity, pressure) and BMP280 (temperature, pressure) over I2C.

Datasheets: BME280 BST-BME280-DS001 rev 1.1 — §3.3 forced mode, §3.4 resolution,
§4.2.2 trimming parameters (table 16), §4.2.3 integer compensation code, §5.4 register
descriptions, appendix B measurement time; BMP280 BST-BMP280-DS001 — §3.11.3 the
same T/P code, §3.12 worked example (used in the tests).

One implementation, two registered models: the BMP280 is the BME280 without the
humidity channel (chip id 0x58 instead of 0x60) and so has its own ``quantities``.

Measurements use forced mode: write ctrl_hum, then ctrl_meas with mode=01 (ctrl_hum
only takes effect on a ctrl_meas write), wait the datasheet maximum conversion time,
poll the ``measuring`` status bit, burst-read 0xF7..0xFE, and compensate with the
datasheet's *integer* code (32-bit T and H, 64-bit P), transcribed operation for
operation. Python's ``>>`` floors like the arithmetic shift the code relies on; the one
division in the pressure routine truncates toward zero, as C's does.

A raw value of 0x80000 (T, P) or 0x8000 (H) means "measurement skipped". The driver
enables every channel and waits for the conversion to finish, so a skipped value can
only mean the chip did not measure as commanded (e.g. it reset mid-cycle): this is
raised as :class:`SensorError`, not DataNotReady, so repeated occurrences count as
failures and lead the sampler to reset the device.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field, model_validator

from agent.bus.i2c import I2CDevice
from agent.config.options import DriverOptions
from agent.errors import BusTimeout, FrameError, SensorError
from agent.models import Reading
from agent.sensors import register
from agent.sensors.base import BusKind

log = logging.getLogger(__name__)

_REG_CALIB_TP, _CALIB_TP_LEN = 0x88, 26  # 0x88..0xA1: dig_T1..dig_P9, 0xA0 unused, dig_H1
_REG_CALIB_H, _CALIB_H_LEN = 0xE1, 7  # 0xE1..0xE7: dig_H2..dig_H6
_REG_ID = 0xD0
_REG_RESET, _RESET_WORD = 0xE0, 0xB6
_REG_CTRL_HUM, _REG_STATUS, _REG_CTRL_MEAS, _REG_CONFIG = 0xF2, 0xF3, 0xF4, 0xF5
_REG_DATA = 0xF7  # press[3], temp[3], hum[2]
_STATUS_MEASURING, _STATUS_IM_UPDATE = 0x08, 0x01
_MODE_SLEEP, _MODE_FORCED = 0b00, 0b01
_CONFIG_FILTER_OFF = 0x00  # t_sb 0.5 ms (unused in forced mode), IIR off, no 3-wire SPI
_OSRS_CODE = {1: 0b001, 2: 0b010, 4: 0b011, 8: 0b100, 16: 0b101}
_SKIPPED_TP, _SKIPPED_H = 0x80000, 0x8000
_STARTUP_MS = 2.0  # t_startup after power-on or soft reset, max (datasheet specification)
_POLL_MS = 1.0

CHIP_IDS = {"bme280": 0x60, "bmp280": 0x58}


@dataclass(frozen=True)
class Calibration:
    """Factory trimming parameters; names as in datasheet table 16."""

    dig_T1: int
    dig_T2: int
    dig_T3: int
    dig_P1: int
    dig_P2: int
    dig_P3: int
    dig_P4: int
    dig_P5: int
    dig_P6: int
    dig_P7: int
    dig_P8: int
    dig_P9: int
    dig_H1: int = 0
    dig_H2: int = 0
    dig_H3: int = 0
    dig_H4: int = 0
    dig_H5: int = 0
    dig_H6: int = 0


def _s8(byte: int) -> int:
    return byte - 256 if byte & 0x80 else byte


def parse_calibration(tp: bytes, h: bytes | None = None) -> Calibration:
    """Trimming parameters from registers 0x88..0xA1 and (BME280 only) 0xE1..0xE7.

    dig_H4 and dig_H5 are signed 12-bit values sharing register 0xE5: H4 takes its
    low nibble, H5 its high nibble; the MSB register is sign-extended as in Bosch's code.
    """
    if len(tp) != _CALIB_TP_LEN or (h is not None and len(h) != _CALIB_H_LEN):
        raise FrameError("calibration block has the wrong length", raw=tp + (h or b""))
    t_p = struct.unpack("<HhhHhhhhhhhhxB", tp)
    humidity: dict[str, int] = {}
    if h is not None:
        humidity = {
            "dig_H1": t_p[12],
            "dig_H2": struct.unpack("<h", h[0:2])[0],
            "dig_H3": h[2],
            "dig_H4": (_s8(h[3]) << 4) | (h[4] & 0x0F),
            "dig_H5": (_s8(h[5]) << 4) | (h[4] >> 4),
            "dig_H6": _s8(h[6]),
        }
    cal = Calibration(*t_p[:12], **humidity)
    if cal.dig_T1 == 0 or cal.dig_P1 == 0:
        # Blank NVM (or a bus returning zeros): the pressure code would divide by zero.
        raise SensorError(f"calibration is blank (raw {(tp + (h or b'')).hex(' ')})")
    return cal


def parse_raw(data: bytes) -> tuple[int, int, int | None]:
    """(adc_P, adc_T, adc_H or None) from a burst read of 0xF7.. (8 bytes BME, 6 BMP)."""
    if len(data) not in (6, 8):
        raise FrameError(f"expected 6 or 8 data bytes, got {len(data)}", raw=data)
    adc_p = (data[0] << 12) | (data[1] << 4) | (data[2] >> 4)
    adc_t = (data[3] << 12) | (data[4] << 4) | (data[5] >> 4)
    adc_h = (data[6] << 8) | data[7] if len(data) == 8 else None
    return adc_p, adc_t, adc_h


def compensate_temperature(adc_T: int, c: Calibration) -> tuple[int, int]:
    """(T in 0.01 °C, t_fine): BME280_compensate_T_int32, datasheet §4.2.3."""
    var1 = (((adc_T >> 3) - (c.dig_T1 << 1)) * c.dig_T2) >> 11
    var2 = (((((adc_T >> 4) - c.dig_T1) * ((adc_T >> 4) - c.dig_T1)) >> 12) * c.dig_T3) >> 14
    t_fine = var1 + var2
    return (t_fine * 5 + 128) >> 8, t_fine


def _div_c(numerator: int, denominator: int) -> int:
    """C integer division: truncates toward zero (Python's // floors)."""
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator >= 0) == (denominator >= 0) else -quotient


def compensate_pressure(adc_P: int, t_fine: int, c: Calibration) -> int:
    """Pressure in Pa as Q24.8 (value/256 = Pa): BME280_compensate_P_int64, §4.2.3."""
    var1 = t_fine - 128000
    var2 = var1 * var1 * c.dig_P6
    var2 = var2 + ((var1 * c.dig_P5) << 17)
    var2 = var2 + (c.dig_P4 << 35)
    var1 = ((var1 * var1 * c.dig_P3) >> 8) + ((var1 * c.dig_P2) << 12)
    var1 = (((1 << 47) + var1) * c.dig_P1) >> 33
    if var1 == 0:
        return 0  # the datasheet's guard against division by zero
    p = 1048576 - adc_P
    p = _div_c(((p << 31) - var2) * 3125, var1)
    var1 = (c.dig_P9 * (p >> 13) * (p >> 13)) >> 25
    var2 = (c.dig_P8 * p) >> 19
    return ((p + var1 + var2) >> 8) + (c.dig_P7 << 4)


def compensate_humidity(adc_H: int, t_fine: int, c: Calibration) -> int:
    """Humidity in %RH as Q22.10 (value/1024 = %): bme280_compensate_H_int32, §4.2.3."""
    v = t_fine - 76800
    v = (((((adc_H << 14) - (c.dig_H4 << 20) - (c.dig_H5 * v)) + 16384) >> 15)
         * (((((((v * c.dig_H6) >> 10) * (((v * c.dig_H3) >> 11) + 32768)) >> 10)
              + 2097152) * c.dig_H2 + 8192) >> 14))
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * c.dig_H1) >> 4)
    v = min(max(v, 0), 419430400)
    return v >> 12


def max_measurement_ms(osrs_t: int, osrs_p: int, osrs_h: int | None) -> float:
    """Worst-case forced-mode conversion time (datasheet appendix B, t_measure,max)."""
    total = 1.25 + 2.3 * osrs_t + (2.3 * osrs_p + 0.575)
    if osrs_h is not None:
        total += 2.3 * osrs_h + 0.575
    return total


class Bme280Options(DriverOptions):
    """Oversampling and timing for a BME280/BMP280 in forced mode.

    The defaults (×1 everywhere, IIR filter off, one reading a minute) are Bosch's
    "weather monitoring" recommendation: lowest power, no self-heating.
    """

    osrs_t: int = Field(
        default=1, description="Temperature oversampling: 1, 2, 4, 8 or 16 (each step adds one bit "
        "of resolution).")
    osrs_p: int = Field(
        default=1, description="Pressure oversampling: 1, 2, 4, 8 or 16 (×1 = 2.62 Pa, ×16 = 0.16 "
        "Pa resolution).")
    osrs_h: int = Field(
        default=1, description="Humidity oversampling: 1, 2, 4, 8 or 16 (reduces noise only; "
        "ignored on a BMP280).")
    timeout_s: float = Field(
        default=0.05, description="Seconds to keep polling a status bit beyond the datasheet's "
        "maximum time.")

    @model_validator(mode="after")
    def _check(self) -> Bme280Options:
        for name in ("osrs_t", "osrs_p", "osrs_h"):
            if getattr(self, name) not in _OSRS_CODE:
                raise ValueError(f"{name} must be one of {sorted(_OSRS_CODE)}")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        return self


@register("bme280", bus=BusKind.I2C, options=Bme280Options)
class Bme280:
    """BME280 in forced mode; also the implementation behind :class:`Bmp280`."""

    model: ClassVar[str] = "bme280"
    quantities: ClassVar[tuple[str, ...]] = ("temperature", "relative_humidity", "pressure")
    _has_humidity: ClassVar[bool] = True

    def __init__(self, bus: I2CDevice, options: Bme280Options) -> None:
        self.bus = bus
        self.options = options
        self.frames_rejected = 0
        self.bytes_discarded = 0
        self.calibration: Calibration | None = None

    # -- life cycle ---------------------------------------------------------------
    def start(self) -> None:
        """Check the chip id, soft reset, wait for the NVM copy, read calibration."""
        self._check_chip_id()
        self.bus.write_register(_REG_RESET, bytes([_RESET_WORD]))
        self.bus.clock.sleep(_STARTUP_MS / 1000.0)
        self._wait_clear(_STATUS_IM_UPDATE, "im_update", _STARTUP_MS)
        tp = self.bus.read_register(_REG_CALIB_TP, _CALIB_TP_LEN)
        h = self.bus.read_register(_REG_CALIB_H, _CALIB_H_LEN) if self._has_humidity else None
        self.calibration = parse_calibration(tp, h)
        self.bus.write_register(_REG_CONFIG, bytes([_CONFIG_FILTER_OFF]))

    def read(self) -> list[Reading]:
        """One forced-mode conversion, compensated with the datasheet integer code."""
        if self.calibration is None:
            self.start()
        assert self.calibration is not None
        opts = self.options
        osrs_h = opts.osrs_h if self._has_humidity else None
        if osrs_h is not None:  # ctrl_hum first: it is latched by the ctrl_meas write
            self.bus.write_register(_REG_CTRL_HUM, bytes([_OSRS_CODE[osrs_h]]))
        self.bus.write_register(_REG_CTRL_MEAS, bytes([self._ctrl_meas(_MODE_FORCED)]))
        max_ms = max_measurement_ms(opts.osrs_t, opts.osrs_p, osrs_h)
        self.bus.clock.sleep(max_ms / 1000.0)
        self._wait_clear(_STATUS_MEASURING, "measuring", max_ms)
        data = self.bus.read_register(_REG_DATA, 8 if self._has_humidity else 6)
        log.debug("%s 0x%02x data %s", self.model, self.bus.address, data.hex(" "))
        return self._compensate(data, self.calibration)

    def reset(self) -> None:
        """Soft reset and re-read everything (also re-checks the chip id)."""
        self.calibration = None
        self.start()

    def stop(self) -> None:
        """Sleep mode (forced mode returns there by itself; this makes it explicit)."""
        self.bus.write_register(_REG_CTRL_MEAS, bytes([self._ctrl_meas(_MODE_SLEEP)]))

    def identify(self) -> dict[str, str]:
        """Chip id and the model it implies; Bosch chips carry no serial number."""
        chip_id = self.bus.read_register(_REG_ID, 1)[0]
        names = {value: name for name, value in CHIP_IDS.items()}
        return {"chip_id": f"0x{chip_id:02x}", "model": names.get(chip_id, "unknown")}

    # -- helpers ------------------------------------------------------------------
    def _compensate(self, data: bytes, cal: Calibration) -> list[Reading]:
        adc_p, adc_t, adc_h = parse_raw(data)
        if _SKIPPED_TP in (adc_t, adc_p) or adc_h == _SKIPPED_H:
            raise SensorError(f"{self.model} 0x{self.bus.address:02x}: a channel reads "
                              f"'skipped' although enabled (raw {data.hex(' ')})")
        centi_c, t_fine = compensate_temperature(adc_t, cal)
        readings = [Reading("temperature", centi_c / 100.0)]  # 0.01 °C
        if adc_h is not None:
            q22_10 = compensate_humidity(adc_h, t_fine, cal)
            readings.append(Reading("relative_humidity", q22_10 / 1024.0))  # Q22.10 %RH
        q24_8 = compensate_pressure(adc_p, t_fine, cal)
        readings.append(Reading("pressure", q24_8 / 256.0 / 100.0))  # Q24.8 Pa → hPa
        return readings

    def _ctrl_meas(self, mode: int) -> int:
        """ctrl_meas: osrs_t[7:5], osrs_p[4:2], mode[1:0]."""
        opts = self.options
        return (_OSRS_CODE[opts.osrs_t] << 5) | (_OSRS_CODE[opts.osrs_p] << 2) | mode

    def _check_chip_id(self) -> None:
        chip_id = self.bus.read_register(_REG_ID, 1)[0]
        expected = CHIP_IDS[self.model]
        if chip_id != expected:
            names = {value: name for name, value in CHIP_IDS.items()}
            found = names.get(chip_id, "an unknown chip")
            raise SensorError(f"configured model {self.model} expects chip id 0x{expected:02x}, "
                              f"but 0x{self.bus.address:02x} reports 0x{chip_id:02x} ({found})")

    def _wait_clear(self, mask: int, name: str, expected_ms: float) -> None:
        """Poll the status register until ``mask`` clears, or raise BusTimeout."""
        deadline = self.bus.clock.monotonic() + self.options.timeout_s
        while True:
            status = self.bus.read_register(_REG_STATUS, 1)[0]
            if not status & mask:
                return
            if self.bus.clock.monotonic() >= deadline:
                raise BusTimeout(f"{self.model} 0x{self.bus.address:02x}: status bit {name} still "
                                 f"set {expected_ms:.1f} ms + {self.options.timeout_s * 1000:.0f} "
                                 f"ms after it should have cleared", raw=bytes([status]))
            self.bus.clock.sleep(_POLL_MS / 1000.0)


@register("bmp280", bus=BusKind.I2C, options=Bme280Options)
class Bmp280(Bme280):
    """BMP280: the BME280 implementation without the humidity channel (chip id 0x58)."""

    model: ClassVar[str] = "bmp280"
    quantities: ClassVar[tuple[str, ...]] = ("temperature", "pressure")
    _has_humidity: ClassVar[bool] = False
