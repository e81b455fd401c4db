"""Emulated Sensirion SCD40 / SCD41 (I2C 0x62): the sensor's side of the wire protocol.

The state machine follows the SCD4x datasheet v1.3: idle, periodic (a sample
every 5 s), low-power periodic (every 30 s) and, on the SCD41, single shot
(5 s) and sleep (power_down; only wake_up is heard, and never acknowledged).
While measuring, every command except read_measurement,
get_data_ready_status, set/get_ambient_pressure and stop is NACKed, as are
commands sent before the previous one's execution time has passed, argument
words with a bad CRC (nothing changes), and unknown commands. The data-ready
flag latches until read_measurement empties the buffer; reading an empty
buffer NACKs the read header.

Settings sit in RAM and survive only through persist_settings (counted in
:attr:`Scd4xDevice.persist_count`, because the real EEPROM wears out).
Values are a seeded random walk unless pinned; the reported temperature
moves with the temperature offset as on the real sensor, whose factory
offset of 4 °C cancels its self-heating.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from enum import IntEnum
from functools import partial

from agent.clock import SYSTEM
from agent.emulators import register
from agent.emulators._sensirion import Handler, SensirionDevice
from agent.emulators._walk import Walk
from agent.emulators.i2c_bus import Nack

ADDRESS = 0x62
DEFAULT_SERIAL = 0xF8969F073BBE
"""The serial number in the datasheet's get_serial_number example."""
_DEFAULT_OFFSET_WORD = 1498  # 4 °C: offset = 175 * word / 2^16
SELF_HEATING_C = _DEFAULT_OFFSET_WORD * 175 / 65536
_VARIANT_WORDS = {"scd40": 0x0000, "scd41": 0x1000}

class Scd4xCommand(IntEnum):
    """The commands of the SCD4x datasheet (v1.3), by name."""

    START_PERIODIC = 0x21B1
    START_LOW_POWER = 0x21AC
    READ_MEASUREMENT = 0xEC05
    STOP_PERIODIC = 0x3F86
    SET_TEMPERATURE_OFFSET = 0x241D
    GET_TEMPERATURE_OFFSET = 0x2318
    SET_ALTITUDE = 0x2427
    GET_ALTITUDE = 0x2322
    AMBIENT_PRESSURE = 0xE000
    """One argument sets it, none reads it."""
    FORCED_RECALIBRATION = 0x362F
    SET_ASC = 0x2416
    GET_ASC = 0x2313
    DATA_READY = 0xE4B8
    PERSIST_SETTINGS = 0x3615
    SERIAL_NUMBER = 0x3682
    SELF_TEST = 0x3639
    FACTORY_RESET = 0x3632
    REINIT = 0x3646
    MEASURE_SINGLE_SHOT = 0x219D
    MEASURE_SINGLE_SHOT_RHT = 0x2196
    POWER_DOWN = 0x36E0
    WAKE_UP = 0x36F6
    SENSOR_VARIANT = 0x202F


_C = Scd4xCommand
_ALLOWED_WHILE_MEASURING = {_C.READ_MEASUREMENT, _C.STOP_PERIODIC, _C.AMBIENT_PRESSURE,
                            _C.DATA_READY}
_SCD41_ONLY = {_C.MEASURE_SINGLE_SHOT, _C.MEASURE_SINGLE_SHOT_RHT, _C.POWER_DOWN}
WAKE_UP_S = 0.02
"""wake_up takes 20 ms (datasheet v1.3); the sensor is deaf meanwhile."""
_EXEC_S: dict[int, float] = {
    _C.READ_MEASUREMENT: 0.001, _C.STOP_PERIODIC: 0.5, _C.SET_TEMPERATURE_OFFSET: 0.001,
    _C.GET_TEMPERATURE_OFFSET: 0.001, _C.SET_ALTITUDE: 0.001, _C.GET_ALTITUDE: 0.001,
    _C.AMBIENT_PRESSURE: 0.001, _C.FORCED_RECALIBRATION: 0.4, _C.SET_ASC: 0.001,
    _C.GET_ASC: 0.001, _C.DATA_READY: 0.001, _C.PERSIST_SETTINGS: 0.8, _C.SERIAL_NUMBER: 0.001,
    _C.SELF_TEST: 10.0, _C.FACTORY_RESET: 1.2, _C.REINIT: 0.02, _C.MEASURE_SINGLE_SHOT_RHT: 0.05,
    _C.POWER_DOWN: 0.001, _C.SENSOR_VARIANT: 0.001}


@dataclass(frozen=True)
class Settings:
    """What persist_settings stores and reinit reloads."""

    temperature_offset_word: int = _DEFAULT_OFFSET_WORD
    altitude_m: int = 0
    ambient_pressure_hpa: int = 1013
    compensation: str = "altitude"
    """Which of altitude or ambient pressure was set last (the later one wins)."""
    asc: bool = True


class Scd4xDevice(SensirionDevice):
    """An SCD40 or SCD41, attachable to an :class:`~agent.emulators.i2c_bus.EmulatedI2CBus`."""

    def __init__(self, *, variant: str = "scd41", seed: int = 0,
                 co2_ppm: float | None = None, temperature_c: float | None = None,
                 humidity_pct: float | None = None, serial: int = DEFAULT_SERIAL,
                 periodic_interval_s: float = 5.0, low_power_interval_s: float = 30.0,
                 single_shot_s: float = 5.0, clock: Callable[[], float] = SYSTEM.monotonic) -> None:
        """Intervals can be shortened for tests and demos; pinned values stay constant."""
        if variant not in _VARIANT_WORDS:
            raise ValueError(f"unknown SCD4x variant {variant!r}")
        super().__init__(clock)
        self.variant = variant
        self._rng = random.Random(seed)
        self._co2 = Walk.unless_pinned(co2_ppm, 520.0, 400.0, 3000.0, 5.0)
        self._temperature = Walk.unless_pinned(temperature_c, 20.0, -10.0, 45.0, 0.05)
        self._humidity = Walk.unless_pinned(humidity_pct, 60.0, 5.0, 98.0, 0.3)
        self.serial = serial
        self._intervals = {"periodic": periodic_interval_s, "low_power": low_power_interval_s}
        self._single_shot_s = single_shot_s
        self.frc_fails = False
        """Make the next forced recalibrations answer 0xFFFF (failed)."""
        self.eeprom = Settings()
        self.settings = self.eeprom
        self.persist_count = 0
        self.state = "idle"
        """idle, periodic, low_power or sleep."""
        self.samples = 0
        self.co2_correction = 0
        self._ready = False
        self._buffer: list[int] | None = None
        self._next_sample = 0.0
        self._shot_due: float | None = None
        self._shot_co2 = True

    def power_cycle(self) -> None:
        """Power loss and return (a brown-out): idle, settings back to what was persisted."""
        self.state = "idle"
        self.settings = self.eeprom
        self._ready = False
        self._buffer = None
        self._shot_due = None

    @property
    def measuring(self) -> bool:
        return self.state in self._intervals

    # -- behaviour -----------------------------------------------------------------------

    def execute(self, code: int, args: list[int], now: float) -> None:
        """Refuse what the state forbids, then the command table; then deaf for the
        command's execution time."""
        if code == _C.WAKE_UP:
            if self.state == "sleep":
                self.state = "idle"
                self.busy_for(WAKE_UP_S, now)
            raise Nack("SCD4x never acknowledges wake_up")
        if self.state == "sleep":
            raise Nack("SCD4x is asleep")
        if self.measuring and code not in _ALLOWED_WHILE_MEASURING:
            raise Nack(f"SCD4x refuses 0x{code:04x} while measuring")
        if code in _SCD41_ONLY and self.variant != "scd41":
            raise Nack(f"{self.variant} has no command 0x{code:04x}")
        super().execute(code, args, now)
        self.busy_for(_EXEC_S.get(code, 0.0), now)

    def handlers(self) -> dict[int, Handler]:
        return {
            _C.START_PERIODIC: partial(self._start, "periodic"),
            _C.START_LOW_POWER: partial(self._start, "low_power"),
            _C.READ_MEASUREMENT: self._read_measurement, _C.STOP_PERIODIC: self._stop,
            _C.DATA_READY: self._data_ready, _C.SERIAL_NUMBER: self._serial_number,
            _C.SELF_TEST: self._self_test,
            _C.MEASURE_SINGLE_SHOT: partial(self._single_shot, co2=True),
            _C.MEASURE_SINGLE_SHOT_RHT: partial(self._single_shot, co2=False),
            _C.POWER_DOWN: self._power_down, _C.SENSOR_VARIANT: self._variant,
            _C.FORCED_RECALIBRATION: self._forced_recalibration,
            _C.SET_TEMPERATURE_OFFSET: self._set_temperature_offset,
            _C.GET_TEMPERATURE_OFFSET: partial(self._get, "temperature_offset_word"),
            _C.SET_ALTITUDE: self._set_altitude, _C.GET_ALTITUDE: partial(self._get, "altitude_m"),
            _C.AMBIENT_PRESSURE: self._ambient_pressure, _C.SET_ASC: self._set_asc,
            _C.GET_ASC: partial(self._get, "asc"), _C.PERSIST_SETTINGS: self._persist,
            _C.FACTORY_RESET: self._factory_reset, _C.REINIT: self._reinit,
        }

    # -- measurement, state and identity -------------------------------------------------

    def _start(self, state: str, args: list[int]) -> None:
        self.expect(args, 0)
        self.state = state
        self._next_sample = self.now + self._intervals[state]
        self._ready = False

    def _read_measurement(self, args: list[int]) -> None:
        self.expect(args, 0)
        if self._ready and self._buffer is not None:
            self.reply(self._buffer, after_read=self._consume)

    def _stop(self, args: list[int]) -> None:
        self.expect(args, 0)
        self.state, self._ready = "idle", False

    def _data_ready(self, args: list[int]) -> None:
        self.expect(args, 0)
        self.reply([0x8006 if self.report_ready(self._ready) else 0x8000])

    def _serial_number(self, args: list[int]) -> None:
        self.expect(args, 0)
        self.reply([self.serial >> 32 & 0xFFFF, self.serial >> 16 & 0xFFFF,
                    self.serial & 0xFFFF])

    def _self_test(self, args: list[int]) -> None:
        self.expect(args, 0)
        self.reply([0x0000])  # passed

    def _single_shot(self, args: list[int], *, co2: bool) -> None:
        self.expect(args, 0)
        duration = self._single_shot_s if co2 else 0.05
        self._shot_due, self._shot_co2 = self.now + duration, co2
        self.busy_for(duration, self.now)

    def _power_down(self, args: list[int]) -> None:
        self.expect(args, 0)
        self.state = "sleep"

    def _variant(self, args: list[int]) -> None:
        self.expect(args, 0)
        self.reply([_VARIANT_WORDS[self.variant]])

    def _forced_recalibration(self, args: list[int]) -> None:
        self.expect(args, 1)
        self.reply([self._recalibrate(args[0])])

    # -- settings (RAM, EEPROM) ----------------------------------------------------------

    def _get(self, name: str, args: list[int]) -> None:
        self.expect(args, 0)
        self.reply([int(getattr(self.settings, name))])

    def _set_temperature_offset(self, args: list[int]) -> None:
        self.expect(args, 1)
        self.settings = replace(self.settings, temperature_offset_word=args[0])

    def _set_altitude(self, args: list[int]) -> None:
        self.expect(args, 1)
        if args[0] > 3000:
            raise Nack(f"SCD4x altitude {args[0]} m out of range")
        self.settings = replace(self.settings, altitude_m=args[0], compensation="altitude")

    def _ambient_pressure(self, args: list[int]) -> None:
        """One argument sets it (700..1200 hPa), none reads it."""
        if not args:
            self._get("ambient_pressure_hpa", args)
            return
        self.expect(args, 1)
        if not 700 <= args[0] <= 1200:
            raise Nack(f"SCD4x ambient pressure {args[0]} hPa out of range")
        self.settings = replace(self.settings, ambient_pressure_hpa=args[0],
                                compensation="pressure")

    def _set_asc(self, args: list[int]) -> None:
        self.expect(args, 1)
        if args[0] > 1:
            raise Nack(f"SCD4x ASC {args[0]} is not 0 or 1")
        self.settings = replace(self.settings, asc=bool(args[0]))

    def _persist(self, args: list[int]) -> None:
        self.expect(args, 0)
        self.eeprom = self.settings
        self.persist_count += 1

    def _factory_reset(self, args: list[int]) -> None:
        self.expect(args, 0)
        self.eeprom = self.settings = Settings()

    def _reinit(self, args: list[int]) -> None:
        self.expect(args, 0)
        self.settings = self.eeprom

    def _recalibrate(self, target: int) -> int:
        """FRC: shift the output so the last reading equals ``target``; 0xFFFF on failure."""
        if self.frc_fails or self.samples == 0:
            return 0xFFFF
        correction = target - round(self._co2.value) - self.co2_correction
        self.co2_correction += correction
        return (0x8000 + correction) & 0xFFFF

    def _consume(self) -> None:
        self._ready = False

    def tick(self) -> float:
        """Take the samples that fell due since the last transaction."""
        now = self.clock()
        if self.measuring and now >= self._next_sample:
            interval = self._intervals[self.state]
            self._next_sample += interval * (int((now - self._next_sample) // interval) + 1)
            self._sample(with_co2=True)
        if self._shot_due is not None and now >= self._shot_due:
            self._shot_due = None
            self._sample(with_co2=self._shot_co2)
        return now

    def _sample(self, *, with_co2: bool) -> None:
        co2 = round(self._co2.advance(self._rng)) + self.co2_correction if with_co2 else 0
        offset_c = self.settings.temperature_offset_word * 175 / 65536
        temperature = self._temperature.advance(self._rng) + SELF_HEATING_C - offset_c
        humidity = self._humidity.advance(self._rng)
        # Inverse of the datasheet conversions: T = -45 + 175 w / 65535, RH = 100 w / 65535.
        t_word = round((temperature + 45) * 65535 / 175)
        rh_word = round(humidity * 65535 / 100)
        self._buffer = [min(max(co2, 0), 0xFFFF), min(max(t_word, 0), 0xFFFF),
                        min(max(rh_word, 0), 0xFFFF)]
        self._ready = True
        self.samples += 1

    def settings_dict(self) -> dict[str, object]:
        """The RAM settings, for tests and the simulator's status output."""
        return asdict(self.settings)


@register("scd40")
def make_scd40(**kwargs: object) -> Scd4xDevice:
    """SCD40 factory for simulated mode and tests; every keyword is optional."""
    return Scd4xDevice(variant="scd40", **kwargs)  # type: ignore[arg-type]


@register("scd41")
def make_scd41(**kwargs: object) -> Scd4xDevice:
    """SCD41 factory for simulated mode and tests; every keyword is optional."""
    return Scd4xDevice(variant="scd41", **kwargs)  # type: ignore[arg-type]
