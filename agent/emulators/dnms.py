"""Emulated DNMS noise module (I2C 0x55): the Teensy's side of the protocol.

Modelled on the device firmware in ``hbitter/DNMS`` (``DNMS_V2.5.1.ino`` for the
Teensy 3.6, ``DNMS_V6.0.x.ino`` for the Teensy 4.0). The audio runs in blocks
(~125 ms on V2: 43 x 2.9 ms; ~93 ms on V6: one FFT4096 frame). Each block gives
a short level that feeds the open interval: energy sum for LAeq, and min/max.
The first blocks after audio start are discarded (start phase).

Latching, as the firmware does it:

* CALCULATE_LEQ (0x0003) clears data-ready and asks for a latch; at the end of
  the next block the interval is snapshotted, the accumulators restart and
  data-ready becomes 1. Data-ready stays 1 until the next CALCULATE_LEQ
  (and, on V2 only, until READ_LEQ is served).
* READ_LEQ (0x0005) serves the snapshot. V2 keeps it (a second read returns
  the same values); V6 zeroes it after serving, so a second read gives 0.0.
* V2 processes no audio at all until RESET (0x0001): its setup() ends with
  AudioNoInterrupts() and RESET re-enables them. V6 runs from power-up; its
  RESET clears flags and accumulators and ends the start phase.
* READ_LEQ_Z (0x0011, LZeq/LZmin/LZmax) exists on V6 only.

Unknown commands are acknowledged and ignored, as the firmware's switch does;
a read with no reply prepared returns idle-bus 0xFF bytes. The real firmware
never checks argument CRCs (it skips those bytes); with ``strict_crc`` (the
default) this model NACKs a write whose trailing words have a bad CRC or a
ragged length, so driver bugs surface in tests.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from agent.clock import SYSTEM
from agent.emulators import register
from agent.emulators._sensirion import (
    Handler,
    SensirionDevice,
    ascii_words,
    float_words,
    frame_words,
    split_write,
)
from agent.emulators._walk import Walk
from agent.emulators.i2c_bus import Nack

ADDRESS = 0x55


class DnmsCommand(IntEnum):
    """The DNMS firmware's I2C commands, by name."""

    RESET = 0x0001
    READ_VERSION = 0x0002
    CALCULATE_LEQ = 0x0003
    DATA_READY = 0x0004
    READ_LEQ_A = 0x0005
    READ_LEQ_Z = 0x0011
    """V6 firmware only."""

_VARIANTS = {
    # version string, block length s, start phase s (200 x 2.9 ms / 44 FFT frames)
    "v2": ("DNMS Version 2.5.1", 43 * 0.0029, 200 * 0.0029),
    "v6": ("DNMS Version 6.0.x ", 4096 / 44100, 44 * 4096 / 44100),
}
MAX_CATCH_UP_BLOCKS = 200_000
"""After a longer gap without bus traffic, older blocks are skipped, not simulated."""


@dataclass
class _Interval:
    """The accumulators of the open interval for one weighting."""

    energy: float = 0.0
    blocks: int = 0
    low: float | None = None
    high: float | None = None

    def add(self, level: float) -> None:
        # LAeq = 10 lg(sum 10^(L/10) / n): energy mean of the block levels.
        self.energy += 10 ** (level / 10)
        self.blocks += 1
        self.low = level if self.low is None else min(self.low, level)
        self.high = level if self.high is None else max(self.high, level)

    def result(self) -> tuple[float, float, float]:
        if not self.blocks or self.low is None or self.high is None:
            return (0.0, 0.0, 0.0)
        return (10 * math.log10(self.energy / self.blocks), self.low, self.high)


def float_frame(*values: float) -> bytes:
    """Floats as the Teensy sends them: big-endian IEEE-754, each word with its CRC-8."""
    return frame_words(float_words(*values))


def version_frame(version: str) -> bytes:
    """The version string with its NUL, in byte pairs with CRC (padded to whole words)."""
    return frame_words(ascii_words(version))


class DnmsDevice(SensirionDevice):
    """A DNMS on an :class:`~agent.emulators.i2c_bus.EmulatedI2CBus`.

    ``level_db`` pins every block's A level (LZ is ``lz_offset_db`` higher);
    ``pinned`` replaces the latched (LAeq, LAmin, LAmax) outright, for byte-exact
    tests. Otherwise a seeded street-noise model drives the blocks: a slowly
    drifting mean (35-80 dB) plus per-block fluctuation.
    """

    def __init__(self, *, variant: str = "v2", seed: int = 0, level_db: float | None = None,
                 lz_offset_db: float = 8.0, pinned: tuple[float, float, float] | None = None,
                 block_s: float | None = None, start_phase_s: float | None = None,
                 version: str | None = None, strict_crc: bool = True,
                 clock: Callable[[], float] = SYSTEM.monotonic) -> None:
        if variant not in _VARIANTS:
            raise ValueError(f"unknown DNMS variant {variant!r} (known: {sorted(_VARIANTS)})")
        default_version, default_block, default_start = _VARIANTS[variant]
        super().__init__(clock)
        self.variant = variant
        self.version = version or default_version
        self.block_s = block_s or default_block
        self.start_phase_s = default_start if start_phase_s is None else start_phase_s
        self.level_db = level_db
        self.lz_offset_db = lz_offset_db
        self.pinned = pinned
        self.strict_crc = strict_crc
        self._rng = random.Random(seed)
        self._mean = Walk(55.0, 35.0, 80.0, 0.05)
        self.unknown_commands = 0
        self.blocks = 0
        """Blocks that fed an interval (start phase excluded)."""
        self.power_cycle()

    # -- state ---------------------------------------------------------------------------

    def power_cycle(self) -> None:
        """Power on: V2 waits for RESET before processing audio, V6 starts at once."""
        self.audio_running = False
        self.data_ready = False
        self.calculate_pending = False
        self._a, self._z = _Interval(), _Interval()
        self.latched_a: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.latched_z: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.clear_reply()
        if self.variant == "v6":
            self._start_audio(self.clock())

    def _start_audio(self, now: float) -> None:
        self.audio_running = True
        self._start_phase_until = now + self.start_phase_s
        self._next_block = now + self.block_s

    # -- bus side ------------------------------------------------------------------------

    def decode(self, data: bytes) -> tuple[int, list[int]]:
        """Strict: NACK a ragged length or bad argument CRC. Lenient, as the firmware is:
        take the command code and skip whatever follows."""
        if self.strict_crc:
            return split_write(data)
        if len(data) < 2:
            raise Nack("DNMS: write shorter than a command")
        return int.from_bytes(data[:2], "big"), []

    def idle_read(self, length: int) -> bytes:
        """Unknown commands are acknowledged and leave nothing to send: SDA stays high."""
        return b"\xff" * length

    def handlers(self) -> dict[int, Handler]:
        """The firmware's command switch; argument words are ignored."""
        table: dict[int, Handler] = {
            DnmsCommand.RESET: lambda _: self._reset(self.now),
            DnmsCommand.READ_VERSION: lambda _: self.reply(ascii_words(self.version)),
            DnmsCommand.CALCULATE_LEQ: self._calculate,
            DnmsCommand.DATA_READY: lambda _: self.reply(
                [int(self.report_ready(self.data_ready))]),
            DnmsCommand.READ_LEQ_A: lambda _: self.reply(
                float_words(*(self.pinned or self.latched_a)), after_read=self._served_a)}
        if self.variant == "v6":
            table[DnmsCommand.READ_LEQ_Z] = lambda _: self.reply(
                float_words(*self.latched_z), after_read=self._served_z)
        return table

    def unknown_command(self, code: int) -> None:
        """Acknowledged and ignored, as the firmware's switch does; counted."""
        self.unknown_commands += 1

    def _calculate(self, args: list[int]) -> None:
        self.data_ready, self.calculate_pending = False, True

    def _reset(self, now: float) -> None:
        if self.variant == "v2":
            if not self.audio_running:
                self._start_audio(now)  # AudioInterrupts(): nothing else changes
            return
        self.calculate_pending = self.data_ready = False
        self._a, self._z = _Interval(), _Interval()
        self._start_phase_until = now  # V6 ends the start phase on RESET

    def _served_a(self) -> None:
        if self.variant == "v2":
            self.data_ready = False
        else:
            self.latched_a = (0.0, 0.0, 0.0)
            self.pinned = None

    def _served_z(self) -> None:
        self.latched_z = (0.0, 0.0, 0.0)

    # -- audio ---------------------------------------------------------------------------

    def tick(self) -> float:
        """Run the audio blocks that ended by now (every bus transaction does this first)."""
        now = self.clock()
        if not self.audio_running:
            return now
        behind = int((now - self._next_block) // self.block_s)
        if behind > MAX_CATCH_UP_BLOCKS:
            self._next_block += (behind - MAX_CATCH_UP_BLOCKS) * self.block_s
        while self._next_block <= now:
            if self._next_block > self._start_phase_until:
                self._block()
            self._next_block += self.block_s
        return now

    def _block(self) -> None:
        if self.level_db is not None:
            level = self.level_db
        else:
            level = self._mean.advance(self._rng) + self._rng.gauss(0.0, 1.5)
        self._a.add(level)
        self._z.add(level + self.lz_offset_db + (0 if self.level_db is not None
                                                  else self._rng.gauss(0.0, 0.5)))
        self.blocks += 1
        if self.calculate_pending:
            self.latched_a, self.latched_z = self._a.result(), self._z.result()
            self._a, self._z = _Interval(), _Interval()
            self.calculate_pending, self.data_ready = False, True


@register("dnms")
def dnms_device(**kwargs: object) -> DnmsDevice:
    """Factory for simulated mode and tests; every keyword is optional."""
    return DnmsDevice(**kwargs)  # type: ignore[arg-type]
