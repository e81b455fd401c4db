"""Emulated Sensirion SCD30 (I2C 0x61): the module's side of the wire protocol.

It keeps the real module's state: settings in "non-volatile memory"
(interval, ASC, FRC reference, altitude, temperature offset, measuring or
not), a measurement buffer whose data-ready flag latches until the buffer is
read, and a new sample every measurement interval on its own clock. Argument
words must carry a correct CRC or the write is NACKed and nothing changes;
unknown commands are NACKed; a soft reset makes it deaf for the boot time.

Values are a seeded random walk unless pinned with constructor arguments.
Fault injection (from :class:`~agent.emulators._sensirion.SensirionDevice`):
:meth:`corrupt_next` (bad CRC in replies), :meth:`nack_next`, :meth:`hold_not_ready`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from enum import IntEnum
from functools import partial

from agent.clock import SYSTEM
from agent.emulators import register
from agent.emulators._sensirion import Handler, SensirionDevice, float_words
from agent.emulators._walk import Walk
from agent.emulators.i2c_bus import Nack

ADDRESS = 0x61
READ_DELAY_S = 0.003
"""The host must wait this long after a command before reading; earlier reads are refused."""
BOOT_S = 2.0


class Scd30Command(IntEnum):
    """The commands of the SCD30 interface description, by name."""

    START_CONTINUOUS = 0x0010
    STOP = 0x0104
    INTERVAL = 0x4600
    DATA_READY = 0x0202
    READ_MEASUREMENT = 0x0300
    ASC = 0x5306
    FRC = 0x5204
    TEMPERATURE_OFFSET = 0x5403
    ALTITUDE = 0x5102
    FIRMWARE = 0xD100
    SOFT_RESET = 0xD304


class Scd30Device(SensirionDevice):
    """The SCD30 module, attachable to an :class:`~agent.emulators.i2c_bus.EmulatedI2CBus`."""

    read_delay_s = READ_DELAY_S

    def __init__(self, *, seed: int = 0, co2_ppm: float | None = None,
                 temperature_c: float | None = None, humidity_pct: float | None = None,
                 sample_interval_s: float | None = None, boot_s: float = BOOT_S,
                 firmware: int = 0x0342, measuring: bool = False,
                 clock: Callable[[], float] = SYSTEM.monotonic) -> None:
        """``sample_interval_s`` overrides the configured interval for sample timing only
        (tests and demos); pinned values stay constant; ``clock`` is the device's time."""
        super().__init__(clock)
        self._rng = random.Random(seed)
        self._co2 = Walk.unless_pinned(co2_ppm, 480.0, 400.0, 2500.0, 4.0)
        self._temperature = Walk.unless_pinned(temperature_c, 21.0, -10.0, 45.0, 0.05)
        self._humidity = Walk.unless_pinned(humidity_pct, 55.0, 5.0, 98.0, 0.3)
        self._sample_interval_s = sample_interval_s
        self._boot_s = boot_s
        self.firmware = firmware
        # Settings the module keeps in non-volatile memory.
        self.interval_s = 2
        self.asc = False
        self.frc_ppm = 400
        self.altitude_m = 0
        self.temperature_offset_ticks = 0
        self.ambient_pressure_mbar = 0
        self.measuring = False
        # Run-time state.
        self.samples = 0
        self.co2_correction = 0.0
        self._ready = False
        self._buffer: list[int] | None = None
        self._next_sample = 0.0
        if measuring:
            self._begin(self.clock())

    # -- behaviour -----------------------------------------------------------------------

    def handlers(self) -> dict[int, Handler]:
        return {
            Scd30Command.START_CONTINUOUS: self._start, Scd30Command.STOP: self._stop,
            Scd30Command.DATA_READY: self._data_ready,
            Scd30Command.READ_MEASUREMENT: self._read_measurement,
            Scd30Command.FIRMWARE: self._firmware, Scd30Command.SOFT_RESET: self._soft_reset,
            Scd30Command.INTERVAL: partial(self._setting, "interval_s", 2, 1800),
            Scd30Command.ASC: partial(self._setting, "asc", 0, 1),
            Scd30Command.FRC: partial(self._setting, "frc_ppm", 400, 2000),
            Scd30Command.TEMPERATURE_OFFSET: partial(self._setting,
                                                     "temperature_offset_ticks", 0, 0xFFFF),
            Scd30Command.ALTITUDE: partial(self._setting, "altitude_m", 0, 0xFFFF),
        }

    def _setting(self, name: str, low: int, high: int, args: list[int]) -> None:
        """A non-volatile setting: no argument reads it, one argument in range sets it."""
        if len(args) > 1:
            raise Nack(f"SCD30 {name} takes at most one argument")
        if not args:
            self.reply([int(getattr(self, name))])
            return
        if not low <= args[0] <= high:
            raise Nack(f"SCD30 {name} {args[0]} out of range")
        if name == "frc_ppm":
            self.co2_correction = args[0] - self._co2.value
        setattr(self, name, bool(args[0]) if name == "asc" else args[0])

    def _start(self, args: list[int]) -> None:
        self.expect(args, 1)
        if args[0] and not 700 <= args[0] <= 1400:
            raise Nack(f"SCD30 pressure {args[0]} out of range")
        self.ambient_pressure_mbar = args[0]
        if not self.measuring:
            self._begin(self.now)

    def _stop(self, args: list[int]) -> None:
        self.expect(args, 0)
        self.measuring, self._ready = False, False

    def _data_ready(self, args: list[int]) -> None:
        self.expect(args, 0)
        self.reply([int(self.report_ready(self._ready))])

    def _read_measurement(self, args: list[int]) -> None:
        # The host must check data-ready first; a read without new data repeats
        # the old buffer, and only clears the flag once the bytes went out.
        self.expect(args, 0)
        if self._buffer is not None:
            self.reply(self._buffer, after_read=self._consume)

    def _firmware(self, args: list[int]) -> None:
        self.expect(args, 0)
        self.reply([self.firmware])

    def _soft_reset(self, args: list[int]) -> None:
        self.expect(args, 0)
        self.busy_for(self._boot_s, self.now)
        self._ready, self._buffer = False, None
        if self.measuring:  # the mode is resumed from non-volatile memory
            self._next_sample = self._busy_until + self._interval()

    def _consume(self) -> None:
        self._ready = False

    def _begin(self, now: float) -> None:
        self.measuring = True
        self._next_sample = now + self._interval()

    def _interval(self) -> float:
        return self._sample_interval_s or float(self.interval_s)

    def tick(self) -> float:
        """Take the samples that fell due since the last transaction."""
        now = self.clock()
        if self.measuring and now >= self._next_sample and now >= self._busy_until:
            interval = self._interval()
            self._next_sample += interval * (int((now - self._next_sample) // interval) + 1)
            self._sample()
        return now

    def _sample(self) -> None:
        co2 = self._co2.advance(self._rng) + self.co2_correction
        temperature = (self._temperature.advance(self._rng)
                       - self.temperature_offset_ticks * 0.01)
        humidity = self._humidity.advance(self._rng)
        self._buffer = float_words(max(0.0, co2), temperature, humidity)
        self._ready = True
        self.samples += 1


@register("scd30")
def make_scd30(**kwargs: object) -> Scd30Device:
    """Factory for simulated mode and tests; every keyword is optional."""
    return Scd30Device(**kwargs)  # type: ignore[arg-type]
