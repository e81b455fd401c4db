"""Emulated Plantower PMS5003 / PMS7003 / PMSA003, speaking from the sensor's side.

The state machine follows the data manuals: active mode after power-up with a frame
every 2.3 s (the stable sub-mode; the fast sub-mode is not modelled), passive mode
answering each passive-read command, and sleep, in which the sensor sends nothing and
honours only the wake command. Commands whose 16-bit sum does not match are ignored,
as the real sensor does (the protocol has no negative acknowledgement).

Frames are built here with ``struct`` rather than with the driver's encoder, so the
driver's tests check it against an independent implementation of the wire format.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import IntEnum

from agent.bus.crc import sum16
from agent.emulators import register
from agent.emulators._log import BoundedLog

PERIOD_S = 2.3                  # active stable sub-mode interval (datasheet)
VERSION = 0x97                  # Data13 high byte seen on real PMS5003 units

_HEADER = b"\x42\x4d"
_COMMAND_SIZE = 7
# Share of the >0.3 um count seen in each larger bin (decreasing, like real air).
_COUNT_SHARES = (1.0, 0.3, 0.05, 0.01, 0.003, 0.001)


class PmsCommand(IntEnum):
    """The PMSx003 host commands (byte CMD of a command), by name."""

    CHANGE_MODE = 0xE1
    """Data 0: passive, 1: active."""
    PASSIVE_READ = 0xE2
    SLEEP_SET = 0xE4
    """Data 0: sleep, 1: wake."""


class _Ignored(Exception):
    """The sensor ignores this command: no answer, not counted as accepted."""


@dataclass(frozen=True)
class PmsValues:
    """Data1..Data12 of a frame, as the integers that go on the wire."""

    pm1_0_cf1: int
    pm2_5_cf1: int
    pm10_cf1: int
    pm1_0: int
    pm2_5: int
    pm10: int
    count_0_3um: int
    count_0_5um: int
    count_1_0um: int
    count_2_5um: int
    count_5_0um: int
    count_10um: int

    def words(self) -> tuple[int, ...]:
        return tuple([getattr(self, name) for name in _WORD_NAMES])  # astuple: see the driver


_WORD_NAMES = tuple(f.name for f in fields(PmsValues))


def build_frame(values: PmsValues, version: int = VERSION, error_code: int = 0) -> bytes:
    """The 32-byte data frame: "BM", length 28, 13 big-endian words, 16-bit sum."""
    body = struct.pack(">2sH12HBB", _HEADER, 28, *values.words(), version, error_code)
    return body + struct.pack(">H", sum16(body))


def build_ack(command: int, data_low: int) -> bytes:
    """The 8-byte acknowledgement: "BM", length 4, command, echoed DATAL, 16-bit sum."""
    body = struct.pack(">2sHBB", _HEADER, 4, command, data_low)
    return body + struct.pack(">H", sum16(body))


class PmsDevice:
    """A PMSx003 as seen from its UART; plug it into ``PtySerialEmulator``.

    ``pinned`` fixes the values of every frame (tests); otherwise PM2.5 follows a seeded
    slow random walk from ``pm2_5_start`` and everything else is derived from it so a
    frame is always consistent (PM1 ≤ PM2.5 ≤ PM10, counts falling with size).
    ``error_code`` is sent as the Data13 low byte. ``accepted`` logs every command the
    device executed, byte for byte; ``commands_ignored`` counts the ones it dropped.
    """

    def __init__(self, *, seed: int = 0, period_s: float = PERIOD_S,
                 pinned: PmsValues | None = None, pm2_5_start: float = 8.0,
                 version: int = VERSION, error_code: int = 0) -> None:
        self.period_s = period_s
        self.pinned = pinned
        self.version = version
        self.error_code = error_code
        self.mode = "active"    # the power-up default
        self.asleep = False
        self.accepted: BoundedLog[bytes] = BoundedLog()
        self.commands_ignored = 0
        self._rng = random.Random(seed)
        self._pm2_5 = pm2_5_start
        self._rx = bytearray()
        self._next_due: float | None = None

    # -- SerialDevice protocol ----------------------------------------------------------

    def receive(self, data: bytes) -> list[bytes]:
        """Collect command bytes; execute each complete 7-byte command."""
        self._rx += data
        replies: list[bytes] = []
        while True:
            start = self._rx.find(_HEADER)
            if start < 0:
                # noise; keep a trailing 0x42, it may be the first half of a header
                keep = 1 if self._rx.endswith(_HEADER[:1]) else 0
                del self._rx[: len(self._rx) - keep]
                break
            del self._rx[:start]
            if len(self._rx) < _COMMAND_SIZE:
                break
            command = bytes(self._rx[:_COMMAND_SIZE])
            del self._rx[:_COMMAND_SIZE]
            reply = self._execute(command)
            if reply is not None:
                replies.append(reply)
        return replies

    def poll(self, now: float) -> list[bytes]:
        """In active mode and awake, one frame every ``period_s``."""
        if self.asleep or self.mode != "active":
            self._next_due = None
            return []
        if self._next_due is None:
            self._next_due = now + self.period_s
            return []
        if now < self._next_due:
            return []
        self._next_due = max(self._next_due + self.period_s, now)
        return [self.frame()]

    def corrupt(self, frame: bytes) -> bytes:
        """Flip the low check byte so the 16-bit sum no longer matches."""
        return frame[:-1] + bytes([frame[-1] ^ 0xFF])

    # -- values -----------------------------------------------------------------------

    def frame(self) -> bytes:
        """A data frame with the next values (pinned, or one step of the random walk)."""
        return build_frame(self.pinned or self._step(), self.version, self.error_code)

    def _step(self) -> PmsValues:
        # multiplicative walk: a few percent per frame, kept inside a plausible range
        self._pm2_5 = min(400.0, max(1.0, self._pm2_5 * math.exp(self._rng.gauss(0.0, 0.03))))
        pm2_5 = round(self._pm2_5)
        pm1_0 = min(pm2_5, round(self._pm2_5 * 0.7))
        pm10 = max(pm2_5, round(self._pm2_5 * 1.3))
        # CF=1 equals the atmospheric value in clean air and reads higher above ~30 ug/m3
        cf1 = [value if value <= 30 else round(value * 1.5 - 15) for value in (pm1_0, pm2_5,
                                                                               pm10)]
        count_0_3 = self._pm2_5 * 60.0 + 100.0
        counts = [round(count_0_3 * share) for share in _COUNT_SHARES]
        return PmsValues(cf1[0], cf1[1], cf1[2], pm1_0, pm2_5, pm10, counts[0], counts[1],
                         counts[2], counts[3], counts[4], counts[5])

    # -- commands -----------------------------------------------------------------------

    def _execute(self, command: bytes) -> bytes | None:
        if sum16(command[:5]) != int.from_bytes(command[5:7], "big"):
            self.commands_ignored += 1  # the real sensor stays silent on a bad checksum
            return None
        code, data_low = command[2], command[4]
        if self.asleep:
            if code == PmsCommand.SLEEP_SET and data_low == 1:
                self.accepted.append(command)
                self.asleep = False     # no acknowledgement; active frames resume
            else:
                self.commands_ignored += 1
            return None
        table: dict[int, Callable[[int], bytes | None]] = {
            PmsCommand.CHANGE_MODE: self._change_mode,
            PmsCommand.PASSIVE_READ: self._passive_read, PmsCommand.SLEEP_SET: self._sleep_set}
        handler = table.get(code)
        try:
            if handler is None:
                raise _Ignored
            reply = handler(data_low)
        except _Ignored:
            self.commands_ignored += 1
            return None
        self.accepted.append(command)
        return reply

    def _change_mode(self, data_low: int) -> bytes:
        if data_low not in (0, 1):
            raise _Ignored
        self.mode = "active" if data_low else "passive"
        return build_ack(PmsCommand.CHANGE_MODE, data_low)

    def _passive_read(self, data_low: int) -> bytes:
        if self.mode != "passive":
            raise _Ignored  # a passive read in active mode
        return self.frame()

    def _sleep_set(self, data_low: int) -> bytes | None:
        if data_low == 0:
            self.asleep = True
            return build_ack(PmsCommand.SLEEP_SET, data_low)
        if data_low == 1:
            return None  # wake while awake: nothing to do, no answer
        raise _Ignored


@register("pms5003", "pms7003", "pmsa003")
def create(seed: int = 0, period_s: float = PERIOD_S) -> PmsDevice:
    """A PMSx003 in its power-up state (active mode, awake) with seeded values."""
    return PmsDevice(seed=seed, period_s=period_s)
