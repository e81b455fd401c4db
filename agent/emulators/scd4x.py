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
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from agent.emulators import register
from agent.emulators._sensirion import SensirionDevice
from agent.emulators._walk import Walk
from agent.emulators.i2c_bus import Nack

ADDRESS = 0x62
DEFAULT_SERIAL = 0xF8969F073BBE
"""The serial number in the datasheet's get_serial_number example."""
_DEFAULT_OFFSET_WORD = 1498  # 4 °C: offset = 175 * word / 2^16
SELF_HEATING_C = _DEFAULT_OFFSET_WORD * 175 / 65536
_VARIANT_WORDS = {"scd40": 0x0000, "scd41": 0x1000}

_ALLOWED_WHILE_MEASURING = {0xEC05, 0x3F86, 0xE000, 0xE4B8}
_SCD41_ONLY = {0x219D, 0x2196, 0x36E0}
_WAKE_UP = 0x36F6
WAKE_UP_S = 0.02
"""wake_up takes 20 ms (datasheet v1.3); the sensor is deaf meanwhile."""
_UNKNOWN: list[int] = [-1]
"""Sentinel: the command is not handled here."""
_EXEC_S = {0xEC05: 0.001, 0x3F86: 0.5, 0x241D: 0.001, 0x2318: 0.001, 0x2427: 0.001,
           0x2322: 0.001, 0xE000: 0.001, 0x362F: 0.4, 0x2416: 0.001, 0x2313: 0.001,
           0xE4B8: 0.001, 0x3615: 0.8, 0x3682: 0.001, 0x3639: 10.0, 0x3632: 1.2,
           0x3646: 0.02, 0x2196: 0.05, 0x36E0: 0.001, 0x202F: 0.001}


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
                 single_shot_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
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
        if code == _WAKE_UP:
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
        reply = self._control(code, args, now)
        if reply is _UNKNOWN:
            reply = self._configure(code, args)
        if reply is _UNKNOWN:
            raise Nack(f"SCD4x: bad command 0x{code:04x} with {len(args)} argument(s)")
        if reply:
            self.reply(reply)
        self.busy_for(_EXEC_S.get(code, 0.0), now)

    def _control(self, code: int, args: list[int], now: float) -> list[int]:
        """Measurement, state and identity commands; ``_UNKNOWN`` for anything else."""
        reply: list[int] = []
        match code, args:
            case (0x21B1, []) | (0x21AC, []):
                self.state = "periodic" if code == 0x21B1 else "low_power"
                self._next_sample = now + self._intervals[self.state]
                self._ready = False
            case (0xEC05, []):
                if self._ready and self._buffer is not None:
                    self.reply(self._buffer, after_read=self._consume)
            case (0x3F86, []):
                self.state, self._ready = "idle", False
            case (0xE4B8, []):
                reply = [0x8006 if self.report_ready(self._ready) else 0x8000]
            case (0x3682, []):
                reply = [self.serial >> 32 & 0xFFFF, self.serial >> 16 & 0xFFFF,
                         self.serial & 0xFFFF]
            case (0x3639, []):
                reply = [0x0000]  # self-test passed
            case (0x219D, []) | (0x2196, []):
                duration = self._single_shot_s if code == 0x219D else 0.05
                self._shot_due, self._shot_co2 = now + duration, code == 0x219D
                self.busy_for(duration, now)
            case (0x36E0, []):
                self.state = "sleep"
            case (0x202F, []):
                reply = [_VARIANT_WORDS[self.variant]]
            case (0x362F, [target]):
                reply = [self._recalibrate(target)]
            case _:
                return _UNKNOWN
        return reply

    def _configure(self, code: int, args: list[int]) -> list[int]:
        """Settings commands (RAM, EEPROM); ``_UNKNOWN`` for anything else."""
        settings = self.settings
        reply: list[int] = []
        match code, args:
            case (0x241D, [word]):
                self.settings = replace(settings, temperature_offset_word=word)
            case (0x2318, []):
                reply = [settings.temperature_offset_word]
            case (0x2427, [metres]) if metres <= 3000:
                self.settings = replace(settings, altitude_m=metres, compensation="altitude")
            case (0x2322, []):
                reply = [settings.altitude_m]
            case (0xE000, [hpa]) if 700 <= hpa <= 1200:
                self.settings = replace(settings, ambient_pressure_hpa=hpa,
                                        compensation="pressure")
            case (0xE000, []):
                reply = [settings.ambient_pressure_hpa]
            case (0x2416, [enabled]) if enabled <= 1:
                self.settings = replace(settings, asc=bool(enabled))
            case (0x2313, []):
                reply = [int(settings.asc)]
            case (0x3615, []):
                self.eeprom = settings
                self.persist_count += 1
            case (0x3632, []):
                self.eeprom = self.settings = Settings()
            case (0x3646, []):
                self.settings = self.eeprom
            case _:
                return _UNKNOWN
        return reply

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
