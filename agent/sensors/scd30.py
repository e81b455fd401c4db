"""Sensirion SCD30 NDIR CO2 / temperature / humidity module on I2C (address 0x61).

Datasheets: Sensirion "Interface Description SCD30 Sensor Module" v1.0 (May
2020) and "Datasheet SCD30" v1.0. Every command is a 16-bit code; arguments
and replies are Sensirion words with CRC-8 (see :mod:`agent.sensors._sensirion`).
A measurement is three big-endian IEEE-754 floats (CO2 ppm, T °C, RH %), each
split over two CRC-protected words.

I2C quirks the driver and host must respect:

* No repeated START: the command is one write transaction, the reply a
  separate read (the shared framing always does this).
* The master must wait at least 3 ms between the command write and the read
  header (``_READ_DELAY_S``).
* Clock stretching of up to 30 ms per frame, and up to 150 ms once a day
  during internal calibration. The host adapter has to tolerate it; the
  Raspberry Pi's hardware I2C does not reliably, so use the ``i2c-gpio``
  overlay or raise the controller's clock-stretch timeout (see the profile).

The SCD30 keeps interval, ASC, forced recalibration, altitude and
temperature offset in non-volatile memory, and resumes continuous measurement
after power-up. The driver therefore reads each setting back and writes it
only when it differs, which spares the memory and leaves settings made by
other tools alone when an option is not set.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from agent.bus.i2c import I2CDevice
from agent.config.options import DriverOptions
from agent.errors import DataNotReady
from agent.models import Reading
from agent.sensors import register
from agent.sensors._sensirion import SensirionCommand, SensirionDriver, decode_floats
from agent.sensors.base import BusKind

_READ_DELAY_S = 0.003
"""Interface description §1.1: wait ≥ 3 ms between the command write and the read."""
_WRITE_DELAY_S = 0.020
"""Sensirion's reference driver waits 20 ms after writing a setting."""
BOOT_S = 2.0
"""Boot-up time after power-up or soft reset: < 2 s."""

MIN_INTERVAL_S = 2
MAX_INTERVAL_S = 1800
MIN_PRESSURE_MBAR = 700
MAX_PRESSURE_MBAR = 1400
MIN_FRC_PPM = 400
MAX_FRC_PPM = 2000
OFFSET_TICK_C = 0.01
"""Temperature offset unit: one tick is 0.01 °C (unsigned, subtracted from T)."""

_START = SensirionCommand(0x0010, "start continuous measurement")
_STOP = SensirionCommand(0x0104, "stop continuous measurement")
_GET_INTERVAL = SensirionCommand(0x4600, "get measurement interval", _READ_DELAY_S, 1)
_SET_INTERVAL = SensirionCommand(0x4600, "set measurement interval", _WRITE_DELAY_S)
_DATA_READY = SensirionCommand(0x0202, "get data ready", _READ_DELAY_S, 1)
_READ_MEASUREMENT = SensirionCommand(0x0300, "read measurement", _READ_DELAY_S, 6)
_GET_ASC = SensirionCommand(0x5306, "get ASC", _READ_DELAY_S, 1)
_SET_ASC = SensirionCommand(0x5306, "set ASC", _WRITE_DELAY_S)
_GET_FRC = SensirionCommand(0x5204, "get forced recalibration value", _READ_DELAY_S, 1)
_SET_FRC = SensirionCommand(0x5204, "set forced recalibration value", _WRITE_DELAY_S)
_GET_OFFSET = SensirionCommand(0x5403, "get temperature offset", _READ_DELAY_S, 1)
_SET_OFFSET = SensirionCommand(0x5403, "set temperature offset", _WRITE_DELAY_S)
_GET_ALTITUDE = SensirionCommand(0x5102, "get altitude compensation", _READ_DELAY_S, 1)
_SET_ALTITUDE = SensirionCommand(0x5102, "set altitude compensation", _WRITE_DELAY_S)
_FIRMWARE = SensirionCommand(0xD100, "read firmware version", _READ_DELAY_S, 1)
_SOFT_RESET = SensirionCommand(0xD304, "soft reset")


def parse_measurement(data: bytes) -> tuple[float, float, float]:
    """Decode the 18-byte reply of 0x0300 into (CO2 ppm, T °C, RH %).

    Each value is a big-endian float32 sent as two words, MSW first, each word
    with its own CRC (interface description §1.5). A non-finite value is a SensorError.
    """
    co2, temperature, humidity = decode_floats(data, 3, what="SCD30 measurement",
                                               require_finite=True)
    return co2, temperature, humidity


def parse_firmware(word: int) -> str:
    """Firmware word: major version in the MSB, minor in the LSB ("3.66")."""
    return f"{word >> 8}.{word & 0xFF}"


def offset_to_ticks(offset_c: float) -> int:
    """Temperature offset in °C to the sensor's unit of 0.01 °C."""
    ticks = round(offset_c / OFFSET_TICK_C)
    if not 0 <= ticks <= 0xFFFF:
        raise ValueError(f"temperature offset {offset_c} °C outside 0..655.35")
    return ticks


def _check_pressure(mbar: int) -> None:
    if mbar and not MIN_PRESSURE_MBAR <= mbar <= MAX_PRESSURE_MBAR:
        raise ValueError(f"ambient pressure {mbar} mbar: use 0 (off) or "
                         f"{MIN_PRESSURE_MBAR}..{MAX_PRESSURE_MBAR}")


class Scd30Options(DriverOptions):
    """Per-sensor settings for the ``[sensors.<id>.options]`` table."""

    interval_s: int = Field(
        default=MIN_INTERVAL_S, description="Measurement interval, 2..1800 s. Stored in the "
        "sensor; written only if it differs. A longer interval saves power but the first reading "
        "comes later.")
    asc: bool | None = Field(
        default=None, description="Automatic self-calibration on/off; None leaves the sensor's "
        "stored setting. ASC needs fresh air (about 400 ppm) for an hour a day over 7 days to "
        "settle.")
    altitude_m: int | None = Field(
        default=None, description="Height above sea level in metres for pressure compensation; "
        "None leaves the stored value. Ignored by the sensor while an ambient pressure is set.")
    ambient_pressure_mbar: int = Field(
        default=0, description="Ambient pressure sent with start, 700..1400 mbar; 0 turns pressure "
        "compensation off (the altitude setting then applies).")
    temperature_offset_c: float | None = Field(
        default=None, description="Self-heating offset in °C (0.01 °C steps, not negative) "
        "subtracted from T; None leaves the stored value.")

    @model_validator(mode="after")
    def _check(self) -> Scd30Options:
        if not MIN_INTERVAL_S <= self.interval_s <= MAX_INTERVAL_S:
            raise ValueError(f"interval_s {self.interval_s} outside "
                             f"{MIN_INTERVAL_S}..{MAX_INTERVAL_S}")
        if self.altitude_m is not None and not 0 <= self.altitude_m <= 0xFFFF:
            raise ValueError(f"altitude_m {self.altitude_m} outside 0..65535")
        _check_pressure(self.ambient_pressure_mbar)
        if self.temperature_offset_c is not None:
            offset_to_ticks(self.temperature_offset_c)
        return self


@register("scd30", bus=BusKind.I2C, options=Scd30Options)
class Scd30(SensirionDriver):
    """SCD30 in continuous measurement; read() polls the data-ready flag first."""

    model: ClassVar[str] = "scd30"
    quantities: ClassVar[tuple[str, ...]] = ("co2", "temperature", "relative_humidity")

    def __init__(self, bus: I2CDevice, options: Scd30Options) -> None:
        self._bus = bus
        self.options = options
        self.firmware: str | None = None

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        """Stop any running measurement, check the firmware, apply options, start."""
        # A warm restart of the agent finds the sensor still measuring (the mode
        # even survives power cycles), so begin from a known state.
        self._send(_STOP)
        self.firmware = parse_firmware(self._words(_FIRMWARE)[0])
        options = self.options
        # Stored settings: each written only when it differs (non-volatile memory wear).
        self._ensure(_GET_INTERVAL, _SET_INTERVAL, [options.interval_s], "interval")
        if options.asc is not None:
            self._ensure(_GET_ASC, _SET_ASC, [int(options.asc)], "ASC")
        if options.altitude_m is not None:
            self._ensure(_GET_ALTITUDE, _SET_ALTITUDE, [options.altitude_m], "altitude")
        if options.temperature_offset_c is not None:
            self._ensure(_GET_OFFSET, _SET_OFFSET,
                         [offset_to_ticks(options.temperature_offset_c)], "temperature offset")
        self._send(_START, options.ambient_pressure_mbar)

    def read(self) -> list[Reading]:
        """The newest measurement; :class:`DataNotReady` until a new one exists."""
        if self._words(_DATA_READY)[0] == 0:
            raise DataNotReady("SCD30 has no new measurement yet")
        co2, temperature, humidity = self._query(_READ_MEASUREMENT, parse_measurement)
        return [Reading("co2", co2), Reading("temperature", temperature),
                Reading("relative_humidity", humidity)]

    def reset(self) -> None:
        """Soft reset (0xD304), wait for boot, then start again with the options."""
        self._send(_SOFT_RESET)
        self._bus.clock.sleep(BOOT_S)
        self.start()

    def stop(self) -> None:
        """Stop continuous measurement (the SCD30 has no sleep mode)."""
        self._send(_STOP)

    def identify(self) -> dict[str, str]:
        """Firmware version, e.g. ``{"firmware": "3.66"}``; changes nothing."""
        self.firmware = parse_firmware(self._words(_FIRMWARE)[0])
        return {"firmware": self.firmware}

    # -- calibration and settings (for the command line) ---------------------------

    def set_forced_recalibration(self, reference_ppm: int) -> None:
        """FRC to a reference of 400..2000 ppm.

        Run the sensor for at least 2 minutes at a 2 s interval in stable air of
        known concentration first. Overrides ASC history; kept in the sensor.
        """
        if not MIN_FRC_PPM <= reference_ppm <= MAX_FRC_PPM:
            raise ValueError(f"FRC reference {reference_ppm} ppm outside "
                             f"{MIN_FRC_PPM}..{MAX_FRC_PPM}")
        self._send(_SET_FRC, reference_ppm)

    def forced_recalibration(self) -> int:
        """The FRC reference value last set, in ppm."""
        return self._words(_GET_FRC)[0]

    def set_asc(self, enabled: bool) -> None:
        """Switch automatic self-calibration on or off (kept in the sensor)."""
        self._send(_SET_ASC, int(enabled))

    def asc_enabled(self) -> bool:
        return bool(self._words(_GET_ASC)[0])

    def set_altitude(self, metres: int) -> None:
        self._send(_SET_ALTITUDE, metres)

    def altitude(self) -> int:
        return self._words(_GET_ALTITUDE)[0]

    def set_temperature_offset(self, offset_c: float) -> None:
        self._send(_SET_OFFSET, offset_to_ticks(offset_c))

    def temperature_offset(self) -> float:
        return self._words(_GET_OFFSET)[0] * OFFSET_TICK_C

    def set_ambient_pressure(self, mbar: int) -> None:
        """Update pressure compensation; this (re)starts continuous measurement."""
        _check_pressure(mbar)
        self._send(_START, mbar)
