"""Emulated PCB Artists I2C decibel meter (0x48): the module's register file and timing.

Follows the programming manual's register map: VERSION, ID3..ID0, SCRATCH, CONTROL
(power-down bit 0, weighting bits 2:1), TAVG_HIGH/TAVG_LOW (a write to LOW commits
HIGH:LOW, so writing LOW alone keeps the stale HIGH byte), self-clearing RESET bits
(system reset, clear history, clear min/max, clear interrupt), DECIBEL/MIN/MAX and
the 100-entry history (0x14 newest). Reads and writes auto-increment the register
pointer. Every Tavg a new integer level enters DECIBEL, MIN/MAX and the history.

After power-up or a system reset the module NACKs for 5 ms and its level registers
read 0 (invalid) for about 1 s. Power-down freezes the levels; only a system reset
wakes it. Writes to read-only or undocumented registers are ignored.

Fault injection: :meth:`PcbaDbmDevice.nack_next`, :meth:`power_cycle`; the bus adds
vanish and errno failures.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from agent.clock import SYSTEM
from agent.emulators import register
from agent.emulators._log import BoundedLog
from agent.emulators._walk import Walk
from agent.emulators.i2c_bus import Nack

ADDRESS = 0x48
BOOT_S = 0.005
VALID_AFTER_S = 1.0
_HISTORY = 0x14
_HISTORY_LENGTH = 100
_WRITABLE = {0x05, 0x06, 0x07, 0x0D, 0x0E, 0x0F}
_WEIGHTING_OFFSET_DB = {0b00: 6, 0b01: 0, 0b10: 3, 0b11: 0}
"""Street noise carries low-frequency energy that A discards: C and Z read higher."""
_DEFAULTS = {0x05: 0xAA, 0x06: 0x02, 0x07: 0x03, 0x08: 0xE8, 0x0D: 45, 0x0E: 85, 0x0F: 18}
MAX_CATCH_UP = 1000
"""Averaging periods simulated after a long gap; older ones are skipped."""


class PcbaDbmDevice:
    """The module on an :class:`~agent.emulators.i2c_bus.EmulatedI2CBus`.

    ``level_db`` pins the A-weighted level (rounded to whole dB as the module
    reports); otherwise a seeded walk between 35 and 80 dB drives it.
    """

    def __init__(self, *, version: int = 0x31, device_id: int = 0x1A2B3C4D, seed: int = 0,
                 level_db: float | None = None,
                 clock: Callable[[], float] = SYSTEM.monotonic) -> None:
        self.version = version
        self.device_id = device_id
        self.level_db = level_db
        self._clock = clock
        self._rng = random.Random(seed)
        self._walk = Walk(55.0, 35.0, 80.0, 1.0)
        self.nacks = 0
        self.log: BoundedLog[tuple[str, bytes]] = BoundedLog()
        """Every transaction as ("w", bytes written) or ("r", bytes returned)."""
        self.samples = 0
        self.power_cycle()
        # Created as if powered long before the host first looks: no boot delay now.
        self._ready_at = self._valid_at = self._clock()

    # -- state ---------------------------------------------------------------------------

    def power_cycle(self) -> None:
        """Power on (or system reset): registers to defaults, levels invalid for ~1 s."""
        now = self._clock()
        self.registers = bytearray(256)
        self.registers[0] = self.version
        self.registers[1:5] = self.device_id.to_bytes(4, "big")
        for reg, value in _DEFAULTS.items():
            self.registers[reg] = value
        self.pointer = 0
        self.tavg_ms = 1000
        self._ready_at = now + BOOT_S
        self._valid_at = now + VALID_AFTER_S
        self._next_sample = now + self.tavg_ms / 1000

    @property
    def powered_down(self) -> bool:
        return bool(self.registers[0x06] & 0x01)

    @property
    def history(self) -> bytes:
        return bytes(self.registers[_HISTORY:_HISTORY + _HISTORY_LENGTH])

    def nack_next(self, count: int = 1) -> None:
        """Refuse the next ``count`` transactions."""
        self.nacks += count

    # -- bus side ------------------------------------------------------------------------

    def on_write(self, data: bytes) -> None:
        now = self.tick()
        self.log.append(("w", bytes(data)))
        self._check_ready(now)
        if not data:
            return
        self.pointer = data[0]
        for value in data[1:]:
            self._store(self.pointer, value, now)
            self.pointer = (self.pointer + 1) & 0xFF

    def on_read(self, length: int) -> bytes:
        now = self.tick()
        self._check_ready(now)
        out = bytes(self.registers[(self.pointer + i) & 0xFF] for i in range(length))
        self.pointer = (self.pointer + length) & 0xFF
        self.log.append(("r", out))
        return out

    def _check_ready(self, now: float) -> None:
        if self.nacks:
            self.nacks -= 1
            raise Nack("decibel meter refusing (injected)")
        if now < self._ready_at:
            raise Nack("decibel meter still booting")

    def _store(self, reg: int, value: int, now: float) -> None:
        if reg in _WRITABLE:
            self.registers[reg] = value
        elif reg == 0x08:
            self.registers[reg] = value  # commits TAVG_HIGH:TAVG_LOW
            self.tavg_ms = max(1, self.registers[0x07] << 8 | value)
            self._next_sample = now + self.tavg_ms / 1000
        elif reg == 0x09:
            self._reset(value, now)

    def _reset(self, bits: int, now: float) -> None:
        if bits & 0x08:
            pointer = self.pointer
            self.power_cycle()
            self._ready_at = now + BOOT_S
            self.pointer = pointer
            return
        if bits & 0x04:
            self.registers[_HISTORY:_HISTORY + _HISTORY_LENGTH] = bytes(_HISTORY_LENGTH)
        if bits & 0x02:
            self.registers[0x0B] = self.registers[0x0C] = 0

    # -- measurement ---------------------------------------------------------------------

    def tick(self) -> float:
        """Publish the averaging periods that ended by now."""
        now = self._clock()
        if self.powered_down:
            self._next_sample = max(self._next_sample, now)
            return now
        period = self.tavg_ms / 1000
        behind = int((now - self._next_sample) // period)
        if behind > MAX_CATCH_UP:
            self._next_sample += (behind - MAX_CATCH_UP) * period
        while self._next_sample <= now:
            if self._next_sample >= self._valid_at:
                self._sample()
            self._next_sample += period
        return now

    def _sample(self) -> None:
        level = self.level_db if self.level_db is not None else self._walk.advance(self._rng)
        weighting = self.registers[0x06] >> 1 & 0b11
        value = max(1, min(255, round(level + _WEIGHTING_OFFSET_DB[weighting])))
        regs = self.registers
        regs[0x0A] = value
        regs[0x0B] = value if regs[0x0B] == 0 else min(regs[0x0B], value)
        regs[0x0C] = max(regs[0x0C], value)
        # DBHISTORY_0 is the newest: shift the queue one place towards DBHISTORY_99.
        regs[_HISTORY + 1:_HISTORY + _HISTORY_LENGTH] = regs[_HISTORY:_HISTORY + 99]
        regs[_HISTORY] = value
        self.samples += 1


@register("pcba_dbm")
def pcba_dbm_device(**kwargs: object) -> PcbaDbmDevice:
    """Factory for simulated mode and tests; every keyword is optional."""
    return PcbaDbmDevice(**kwargs)  # type: ignore[arg-type]
