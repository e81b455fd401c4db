"""Sensirion SCD40 / SCD41 photoacoustic CO2 sensors on I2C (address 0x62).

Datasheet: Sensirion "SCD4x" v1.3 (September 2022), command table 9 and
chapters 3.5–3.10; cross-checked with Sensirion's ``embedded-i2c-scd4x``
driver. Commands are 16-bit codes; arguments and replies are Sensirion words
with CRC-8 (:mod:`agent.sensors._sensirion`), and the host waits each
command's execution time before reading.

The sensor is either idle or measuring (periodic every 5 s, low-power
periodic every ~30 s). Most commands are only accepted when idle: while
measuring only read_measurement, get_data_ready_status, set/get ambient
pressure and stop_periodic_measurement are; the sensor NACKs the rest. Stop
takes 500 ms. The SCD41 adds single-shot measurement (5 s) and
power_down/wake_up. Settings live in RAM until persist_settings, which writes
an EEPROM rated for only ~2000 cycles: the driver never persists on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from agent.bus.i2c import I2CDevice
from agent.config.options import DriverOptions
from agent.errors import DataNotReady, NackError, SensorError
from agent.models import Reading
from agent.sensors import register
from agent.sensors._sensirion import SensirionCommand, SensirionDriver, decode_reply, join_words
from agent.sensors.base import BusKind

log = logging.getLogger(__name__)

# Execution times from datasheet table 9 (seconds).
_EXEC_S = 0.001
STOP_S = 0.5
FRC_S = 0.4
PERSIST_S = 0.8
REINIT_S = 0.03  # datasheet v1.3: 20 ms; Sensirion's 2025 driver waits 30 ms
SINGLE_SHOT_S = 5.0
WAKE_UP_S = 0.03  # as reinit: 20 ms in v1.3, 30 ms in the current reference driver

_START_PERIODIC = SensirionCommand(0x21B1, "start_periodic_measurement")
_START_LOW_POWER = SensirionCommand(0x21AC, "start_low_power_periodic_measurement")
_READ_MEASUREMENT = SensirionCommand(0xEC05, "read_measurement", _EXEC_S, 3)
_STOP_PERIODIC = SensirionCommand(0x3F86, "stop_periodic_measurement", STOP_S)
_SET_OFFSET = SensirionCommand(0x241D, "set_temperature_offset", _EXEC_S)
_GET_OFFSET = SensirionCommand(0x2318, "get_temperature_offset", _EXEC_S, 1)
_SET_ALTITUDE = SensirionCommand(0x2427, "set_sensor_altitude", _EXEC_S)
_GET_ALTITUDE = SensirionCommand(0x2322, "get_sensor_altitude", _EXEC_S, 1)
_SET_PRESSURE = SensirionCommand(0xE000, "set_ambient_pressure", _EXEC_S)
_GET_PRESSURE = SensirionCommand(0xE000, "get_ambient_pressure", _EXEC_S, 1)
_FORCED_RECALIBRATION = SensirionCommand(0x362F, "perform_forced_recalibration", FRC_S, 1)
_SET_ASC = SensirionCommand(0x2416, "set_automatic_self_calibration_enabled", _EXEC_S)
_GET_ASC = SensirionCommand(0x2313, "get_automatic_self_calibration_enabled", _EXEC_S, 1)
_DATA_READY = SensirionCommand(0xE4B8, "get_data_ready_status", _EXEC_S, 1)
_PERSIST = SensirionCommand(0x3615, "persist_settings", PERSIST_S)
_SERIAL = SensirionCommand(0x3682, "get_serial_number", _EXEC_S, 3)
_REINIT = SensirionCommand(0x3646, "reinit", REINIT_S)
_SINGLE_SHOT = SensirionCommand(0x219D, "measure_single_shot", SINGLE_SHOT_S)
_POWER_DOWN = SensirionCommand(0x36E0, "power_down", _EXEC_S)
_WAKE_UP = SensirionCommand(0x36F6, "wake_up")  # not ACKed; wait WAKE_UP_S after it

_READY_MASK = 0x07FF
"""get_data_ready_status: data is ready when any of the lower 11 bits is set."""
FRC_FAILED = 0xFFFF
MAX_ALTITUDE_M = 3000
MIN_PRESSURE_HPA = 700
MAX_PRESSURE_HPA = 1200
MIN_FRC_PPM = 400
MAX_FRC_PPM = 2000

Mode = Literal["periodic", "low_power", "single_shot"]


def parse_measurement(data: bytes) -> tuple[int, float, float]:
    """Decode the 9-byte read_measurement reply into (CO2 ppm, T °C, RH %)."""
    words = decode_reply(data, 3, what="SCD4x measurement")
    co2 = words[0]  # CO2 [ppm] = word[0]
    temperature = -45 + 175 * words[1] / 65535  # T [°C] = -45 + 175 * word[1] / (2^16 - 1)
    humidity = 100 * words[2] / 65535  # RH [%] = 100 * word[2] / (2^16 - 1)
    return co2, temperature, humidity


def is_data_ready(word: int) -> bool:
    """get_data_ready_status: lower 11 bits all zero means no new data."""
    return (word & _READY_MASK) != 0


def encode_temperature_offset(offset_c: float) -> int:
    """word = T_offset * 2^16 / 175, rounded.

    The offset uses 2^16 where the measurement uses 2^16 - 1: the datasheet's
    get_temperature_offset example (0x0912 -> 6.2004 °C) and Sensirion's 2021
    driver (``ticks = (m°C * 12271) >> 15``) both scale by 2^16. The difference
    is 0.0015 %, far below the offset's 0.0027 °C step.
    """
    word = round(offset_c * 65536 / 175)
    if not 0 <= word <= 0xFFFF:
        raise ValueError(f"temperature offset {offset_c} °C outside 0..174.99")
    return word


def parse_temperature_offset(word: int) -> float:
    """T_offset [°C] = 175 * word / 2^16."""
    return 175 * word / 65536


def parse_frc_correction(word: int) -> int:
    """FRC correction [ppm] = word - 0x8000; 0xFFFF means the recalibration failed."""
    if word == FRC_FAILED:
        raise SensorError("SCD4x forced recalibration failed (0xFFFF): run the sensor for "
                          "at least 3 minutes in the target mode before FRC")
    return word - 0x8000


def parse_serial(words: list[int]) -> int:
    """48-bit serial number = word[0] << 32 | word[1] << 16 | word[2]."""
    return join_words(words)


class Scd40Options(DriverOptions):
    """Per-sensor settings for the ``[sensors.<id>.options]`` table (SCD40)."""

    mode: Mode = Field(
        default="periodic", description="'periodic' (new value every 5 s) or 'low_power' (every "
        "~30 s, ~3 mA); SCD41 only: 'single_shot' (one 5 s measurement per read, idle in "
        "between).")
    asc: bool | None = Field(
        default=None, description="Automatic self-calibration on/off (RAM); None leaves the "
        "sensor's setting (enabled from the factory). ASC assumes fresh air (~400 ppm) at least "
        "weekly.")
    altitude_m: int | None = Field(
        default=None, description="Sensor altitude above sea level, 0..3000 m, for pressure "
        "compensation (RAM).")
    ambient_pressure_hpa: int | None = Field(
        default=None, description="Ambient pressure 700..1200 hPa (RAM); overrides the altitude "
        "when both are set.")
    temperature_offset_c: float | None = Field(
        default=None, description="Self-heating offset in °C subtracted from T (RAM; factory "
        "default 4 °C).")

    _MODES: ClassVar[frozenset[str]] = frozenset({"periodic", "low_power"})

    @model_validator(mode="after")
    def _check(self) -> Scd40Options:
        if self.mode not in self._MODES:
            raise ValueError(f"mode {self.mode!r} not one of {sorted(self._MODES)}")
        if self.altitude_m is not None and not 0 <= self.altitude_m <= MAX_ALTITUDE_M:
            raise ValueError(f"altitude_m {self.altitude_m} outside 0..{MAX_ALTITUDE_M}")
        if self.ambient_pressure_hpa is not None and \
                not MIN_PRESSURE_HPA <= self.ambient_pressure_hpa <= MAX_PRESSURE_HPA:
            raise ValueError(f"ambient_pressure_hpa {self.ambient_pressure_hpa} outside "
                             f"{MIN_PRESSURE_HPA}..{MAX_PRESSURE_HPA}")
        if self.temperature_offset_c is not None:
            encode_temperature_offset(self.temperature_offset_c)
        return self


class Scd41Options(Scd40Options):
    """SCD41 settings: as the SCD40's, and ``mode`` may also be "single_shot"."""

    _MODES: ClassVar[frozenset[str]] = frozenset({"periodic", "low_power", "single_shot"})


class Scd4x(SensirionDriver):
    """Shared SCD40/SCD41 implementation; the registered classes below only name the model."""

    model: ClassVar[str] = "scd4x"
    quantities: ClassVar[tuple[str, ...]] = ("co2", "temperature", "relative_humidity")

    def __init__(self, bus: I2CDevice, options: Scd40Options) -> None:
        self._bus = bus
        self.options = options
        self.serial: int | None = None
        self._measuring = False
        """Whether this driver left the sensor in a periodic mode."""

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        """Stop a measurement left running, read the serial, apply options, start."""
        self._leave_power_down()
        # A warm restart finds the sensor measuring, and then it refuses settings.
        self._stop_periodic()
        self.serial = parse_serial(self._words(_SERIAL))
        options = self.options
        if options.temperature_offset_c is not None:
            self._send(_SET_OFFSET, encode_temperature_offset(options.temperature_offset_c))
        if options.altitude_m is not None:
            self._send(_SET_ALTITUDE, options.altitude_m)
        if options.ambient_pressure_hpa is not None:
            self._send(_SET_PRESSURE, options.ambient_pressure_hpa)
        if options.asc is not None:
            self._send(_SET_ASC, int(options.asc))
        self._begin()

    def read(self) -> list[Reading]:
        """The newest measurement; :class:`DataNotReady` when there is none yet."""
        if self.options.mode == "single_shot":
            self._send(_SINGLE_SHOT)  # blocks for the 5 s measurement
        if not is_data_ready(self._words(_DATA_READY)[0]):
            raise DataNotReady(f"{self.model} has no new measurement yet")
        co2, temperature, humidity = self._query(_READ_MEASUREMENT, parse_measurement)
        return [Reading("co2", float(co2)), Reading("temperature", temperature),
                Reading("relative_humidity", humidity)]

    def reset(self) -> None:
        """Stop, reinit (reload settings from EEPROM), then start with the options."""
        self._leave_power_down()
        self._stop_periodic()
        self._send(_REINIT)
        self.start()

    def stop(self) -> None:
        """Stop periodic measurement; the sensor idles (SCD41: see :meth:`power_down`)."""
        self._stop_periodic()

    def identify(self) -> dict[str, str]:
        """The 48-bit serial number as 12 hex digits (read at start while idle)."""
        if self.serial is None:
            with self._idle():
                self.serial = parse_serial(self._words(_SERIAL))
        return {"serial": f"{self.serial:012x}"}

    # -- calibration and settings (for the command line) -----------------------------

    def perform_forced_recalibration(self, target_ppm: int) -> int:
        """FRC to a reference concentration; returns the correction in ppm.

        Operate the sensor for more than 3 minutes in its usual mode in air of
        known, stable concentration first. Measurement is stopped for the
        command and restarted afterwards.
        """
        if not MIN_FRC_PPM <= target_ppm <= MAX_FRC_PPM:
            raise ValueError(f"FRC target {target_ppm} ppm outside {MIN_FRC_PPM}..{MAX_FRC_PPM}")
        with self._idle():
            word = self._words(_FORCED_RECALIBRATION, target_ppm)[0]
        return parse_frc_correction(word)

    def set_asc_enabled(self, enabled: bool) -> None:
        with self._idle():
            self._send(_SET_ASC, int(enabled))

    def asc_enabled(self) -> bool:
        with self._idle():
            return bool(self._words(_GET_ASC)[0])

    def set_temperature_offset(self, offset_c: float) -> None:
        with self._idle():
            self._send(_SET_OFFSET, encode_temperature_offset(offset_c))

    def temperature_offset(self) -> float:
        with self._idle():
            return parse_temperature_offset(self._words(_GET_OFFSET)[0])

    def set_sensor_altitude(self, metres: int) -> None:
        if not 0 <= metres <= MAX_ALTITUDE_M:
            raise ValueError(f"altitude {metres} m outside 0..{MAX_ALTITUDE_M}")
        with self._idle():
            self._send(_SET_ALTITUDE, metres)

    def sensor_altitude(self) -> int:
        with self._idle():
            return self._words(_GET_ALTITUDE)[0]

    def set_ambient_pressure(self, hpa: int) -> None:
        """Pressure compensation; accepted while measuring, e.g. from a BME280."""
        if not MIN_PRESSURE_HPA <= hpa <= MAX_PRESSURE_HPA:
            raise ValueError(f"pressure {hpa} hPa outside {MIN_PRESSURE_HPA}..{MAX_PRESSURE_HPA}")
        self._send(_SET_PRESSURE, hpa)

    def ambient_pressure(self) -> int:
        return self._words(_GET_PRESSURE)[0]

    def persist_settings(self) -> None:
        """Write the RAM settings to EEPROM (≥ 2000 cycles): only on explicit request."""
        log.warning("%s 0x%02x: persisting settings to EEPROM", self.model, self._bus.address)
        with self._idle():
            self._send(_PERSIST)

    # -- state helpers ----------------------------------------------------------------

    def _begin(self) -> None:
        mode = self.options.mode
        if mode == "periodic":
            self._send(_START_PERIODIC)
        elif mode == "low_power":
            self._send(_START_LOW_POWER)
        self._measuring = mode != "single_shot"

    def _stop_periodic(self) -> None:
        # Accepted in idle as well, so it is safe when the state is unknown.
        self._send(_STOP_PERIODIC)
        self._measuring = False

    def _leave_power_down(self) -> None:
        """Overridden by the SCD41, which may have been powered down."""

    @contextmanager
    def _idle(self) -> Iterator[None]:
        """Stop periodic measurement for commands the sensor refuses while measuring."""
        was_measuring = self._measuring
        if was_measuring:
            self._stop_periodic()
        try:
            yield
        finally:
            if was_measuring:
                self._begin()


@register("scd40", bus=BusKind.I2C, options=Scd40Options)
class Scd40(Scd4x):
    """SCD40: periodic or low-power periodic measurement."""

    model: ClassVar[str] = "scd40"


@register("scd41", bus=BusKind.I2C, options=Scd41Options)
class Scd41(Scd4x):
    """SCD41: adds single-shot measurement and power_down/wake_up."""

    model: ClassVar[str] = "scd41"

    def __init__(self, bus: I2CDevice, options: Scd40Options) -> None:
        super().__init__(bus, options)
        self.powered_down = False
        self._discard_next = False

    def read(self) -> list[Reading]:
        """As the SCD40; after :meth:`wake_up` the first single shot is discarded."""
        if self._discard_next and self.options.mode == "single_shot":
            self._discard_next = False
            log.debug("scd41 0x%02x: discarding the first single shot after wake-up",
                      self._bus.address)
            super().read()
        return super().read()

    def stop(self) -> None:
        """Stop measuring and power down (about 1 µA) until the next start."""
        super().stop()
        self.power_down()

    def power_down(self) -> None:
        """Sleep from idle; only wake_up is understood afterwards."""
        if self._measuring:
            self._stop_periodic()
        self._send(_POWER_DOWN)
        self.powered_down = True

    def wake_up(self) -> None:
        """Wake to idle. The sensor does not acknowledge wake_up, so a NACK is expected."""
        with suppress(NackError):
            self._send(_WAKE_UP)
        self._bus.clock.sleep(WAKE_UP_S)
        self.powered_down = False
        self._discard_next = True

    def _leave_power_down(self) -> None:
        self.wake_up()
