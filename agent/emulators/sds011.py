"""Emulated Nova Fitness SDS011: the sensor's side of Laser Dust Sensor Control Protocol V1.3.

The model keeps the state the real sensor keeps: reporting mode (active at the
factory; survives power-off), working period (continuous at the factory;
survives power-off), sleep/work (not persisted: it powers up working), device
ID and firmware date. Frames are built here from the protocol, independently
of the driver, so the driver's tests cross-check two implementations.

Behaviour the tests rely on, taken as the stricter reading of the sources:

* a command with a wrong command ID, tail or checksum, or addressed to another
  device ID, gets no answer at all;
* a sleeping sensor answers only the sleep/work *set* command (``06 01 xx``);
  queries and everything else are ignored;
* with a working period of n minutes the sensor works 30 s, then sleeps for the
  rest of the n minutes; in active mode it reports once at the end of each
  30 s work window, and while in its off phase it ignores queries.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from agent.bus.crc import sum8
from agent.clock import SYSTEM
from agent.emulators import register
from agent.emulators._log import BoundedLog

_HEAD = 0xAA
_TAIL = 0xAB
_COMMAND_ID = 0xB4
_DATA_REPLY = 0xC0
_COMMAND_REPLY = 0xC5
_COMMAND_LENGTH = 19
_BROADCAST_ID = 0xFFFF



class Sds011Function(IntEnum):
    """The SDS011 control protocol's functions (data byte 1 of a command), by name."""

    REPORTING_MODE = 2
    QUERY_DATA = 4
    SET_ID = 5
    SLEEP_WORK = 6
    FIRMWARE = 7
    WORKING_PERIOD = 8


_SET = 1

DEFAULT_DEVICE_ID = 0xA160
DEFAULT_FIRMWARE = (15, 7, 10)
PERIOD_WORK_WINDOW_S = 30.0
"""In a periodic working period the sensor works this long per cycle."""


def measurement_frame(pm2_5_tenths: int, pm10_tenths: int, device_id: int) -> bytes:
    """``AA C0 PM25_L PM25_H PM10_L PM10_H ID_H ID_L CS AB`` with a computed checksum."""
    data = (pm2_5_tenths.to_bytes(2, "little") + pm10_tenths.to_bytes(2, "little")
            + device_id.to_bytes(2, "big"))
    return bytes([_HEAD, _DATA_REPLY, *data, sum8(data), _TAIL])


def reply_frame(function: int, data2: int, data3: int, data4: int, device_id: int) -> bytes:
    """``AA C5 <fn> <d2> <d3> <d4> ID_H ID_L CS AB`` with a computed checksum."""
    data = bytes([function, data2, data3, data4]) + device_id.to_bytes(2, "big")
    return bytes([_HEAD, _COMMAND_REPLY, *data, sum8(data), _TAIL])


def _tenths(value: float) -> int:
    """µg/m³ to the wire's 0.1 µg/m³ steps, clamped to what 16 bits can carry."""
    return max(0, min(0xFFFF, round(value * 10)))


class Sds011Device:
    """One SDS011 on a serial line (a :class:`~agent.emulators.serial_pty.SerialDevice`).

    ``pm2_5``/``pm10`` pin the reported values (µg/m³) when not None; otherwise
    a seeded, mean-reverting random walk drives them, with PM10 ≥ PM2.5. The
    attributes can be changed while the emulator runs.
    """

    def __init__(self, *, device_id: int = DEFAULT_DEVICE_ID,
                 firmware: tuple[int, int, int] = DEFAULT_FIRMWARE,
                 pm2_5: float | None = None, pm10: float | None = None, seed: int = 0,
                 query_mode: bool = False, working_period_min: int = 0,
                 report_interval_s: float = 1.0,
                 clock: Callable[[], float] = SYSTEM.monotonic) -> None:
        self.device_id = device_id
        self.firmware = firmware
        self.pm2_5 = pm2_5
        self.pm10 = pm10
        self.query_mode = query_mode
        """Reporting mode: False = active (factory default), True = query."""
        self.working_period_min = working_period_min
        """0 = continuous (factory default), 1..30 = work 30 s every n minutes."""
        self.working = True
        """Set by the sleep/work command; the sensor powers up working."""
        self.report_interval_s = report_interval_s
        """Active-mode reporting interval (the datasheet says once per second)."""
        self._clock = clock
        self._rng = random.Random(seed)
        self._fine = 8.0 + self._rng.random() * 6  # PM2.5, µg/m³
        self._coarse = 4.0 + self._rng.random() * 6  # PM10 - PM2.5, µg/m³
        self._rx = bytearray()
        self._next_report: float | None = None
        self._cycle_start = clock()
        self._last_cycle_reported = -1
        # Counters for tests: what the device saw and did.
        self.commands: BoundedLog[bytes] = BoundedLog()
        """Every well-formed command addressed to this device, in arrival order."""
        self.commands_rejected = 0
        """Candidate frames dropped for a wrong command ID, tail or checksum."""
        self.commands_for_others = 0
        self.commands_ignored_asleep = 0
        self.commands_unsupported = 0
        self.queries_answered = 0
        self.frames_reported = 0
        """Unsolicited active-mode frames."""
        self.sleep_count = 0
        self.wake_count = 0
        self._handlers: dict[int, Callable[[bytes], list[bytes]]] = {
            Sds011Function.REPORTING_MODE: self._reporting_mode,
            Sds011Function.QUERY_DATA: self._query_data,
            Sds011Function.SET_ID: self._set_id,
            Sds011Function.SLEEP_WORK: self._work_state,
            Sds011Function.FIRMWARE: self._firmware_version,
            Sds011Function.WORKING_PERIOD: self._working_period,
        }

    @property
    def sleeping(self) -> bool:
        """True while put to sleep by the sleep/work command (fan and laser off)."""
        return not self.working

    def power_cycle(self) -> None:
        """Cut and restore power: sleep is forgotten, mode, period and ID persist."""
        self.working = True
        self._rx.clear()
        self._next_report = None
        self._cycle_start = self._clock()
        self._last_cycle_reported = -1

    # -- SerialDevice -------------------------------------------------------------

    def receive(self, data: bytes) -> list[bytes]:
        """Parse 19-byte commands out of the byte stream and answer them."""
        self._rx += data
        replies: list[bytes] = []
        while True:
            head = self._rx.find(_HEAD)
            if head < 0:
                self._rx.clear()
                break
            del self._rx[:head]
            if len(self._rx) < _COMMAND_LENGTH:
                break
            frame = bytes(self._rx[:_COMMAND_LENGTH])
            if frame[1] != _COMMAND_ID or frame[18] != _TAIL:
                self.commands_rejected += 1
                del self._rx[:1]  # resynchronise on the next head byte
                continue
            del self._rx[:_COMMAND_LENGTH]
            # Checksum = low byte of the sum of data bytes 1..15 (frame bytes 2..16).
            if sum8(frame[2:17]) != frame[17]:
                self.commands_rejected += 1
                continue
            replies.extend(self._execute(frame))
        return replies

    def poll(self, now: float) -> list[bytes]:
        """Active mode: one C0 frame per interval while working, none in query mode."""
        if self.query_mode or not self.working:
            self._next_report = None
            return []
        if self.working_period_min:
            cycle_s = self.working_period_min * 60
            cycle, phase = divmod(now - self._cycle_start, cycle_s)
            if phase >= PERIOD_WORK_WINDOW_S and cycle > self._last_cycle_reported:
                self._last_cycle_reported = int(cycle)
                return [self._report()]
            return []
        if self._next_report is None:
            self._next_report = now + self.report_interval_s
            return []
        if now < self._next_report:
            return []
        self._next_report = max(self._next_report + self.report_interval_s, now)
        return [self._report()]

    def corrupt(self, frame: bytes) -> bytes:
        """Flip every bit of the checksum byte (second to last in every SDS011 frame)."""
        return frame[:-2] + bytes([frame[-2] ^ 0xFF]) + frame[-1:]

    # -- command handling ---------------------------------------------------------

    def _execute(self, frame: bytes) -> list[bytes]:
        function, data2 = frame[2], frame[3]
        target = int.from_bytes(frame[15:17], "big")
        if target not in (_BROADCAST_ID, self.device_id):
            self.commands_for_others += 1
            return []
        self.commands.append(frame)
        if function == Sds011Function.SLEEP_WORK and data2 == _SET:
            return self._set_sleep_work(frame[4])  # the one command a sleeper hears
        if not self.working or self._period_off(self._clock()):
            self.commands_ignored_asleep += 1
            return []
        handler = self._handlers.get(function)
        if handler is None:
            self.commands_unsupported += 1
            return []
        return handler(frame)

    def _reporting_mode(self, frame: bytes) -> list[bytes]:
        return self._setting(frame, "query_mode", (0, 1))

    def _query_data(self, frame: bytes) -> list[bytes]:
        self.queries_answered += 1
        return [self._measurement()]

    def _set_id(self, frame: bytes) -> list[bytes]:
        # The new ID travels in frame bytes 13-14; the reply already carries it.
        self.device_id = int.from_bytes(frame[13:15], "big")
        return [reply_frame(Sds011Function.SET_ID, 0, 0, 0, self.device_id)]

    def _work_state(self, frame: bytes) -> list[bytes]:
        # Only the query form arrives here; the set form is handled before the sleep check.
        return [reply_frame(Sds011Function.SLEEP_WORK, frame[3], int(self.working), 0,
                            self.device_id)]

    def _firmware_version(self, frame: bytes) -> list[bytes]:
        year, month, day = self.firmware
        return [reply_frame(Sds011Function.FIRMWARE, year, month, day, self.device_id)]

    def _working_period(self, frame: bytes) -> list[bytes]:
        return self._setting(frame, "working_period_min", range(31))

    def _set_sleep_work(self, state: int) -> list[bytes]:
        if state not in (0, 1):
            self.commands_unsupported += 1
            return []
        if state and not self.working:
            self.wake_count += 1
            self._next_report = None
        elif not state and self.working:
            self.sleep_count += 1
        self.working = bool(state)
        return [reply_frame(Sds011Function.SLEEP_WORK, _SET, state, 0, self.device_id)]

    def _setting(self, frame: bytes, attribute: str, allowed: Any) -> list[bytes]:
        """Read (data2 = 0) or write (data2 = 1) a persisted setting and echo its value."""
        function, data2, data3 = frame[2], frame[3], frame[4]
        if data2 == _SET:
            if data3 not in allowed:
                self.commands_unsupported += 1
                return []
            setattr(self, attribute, type(getattr(self, attribute))(data3))
            self._next_report = None
            if function == Sds011Function.WORKING_PERIOD:  # a new period starts a new cycle now
                self._cycle_start = self._clock()
                self._last_cycle_reported = -1
        value = int(getattr(self, attribute))
        return [reply_frame(function, data2, value, 0, self.device_id)]

    def _period_off(self, now: float) -> bool:
        """True in the sleeping part of a periodic working cycle."""
        if not self.working_period_min:
            return False
        return (now - self._cycle_start) % (self.working_period_min * 60) >= PERIOD_WORK_WINDOW_S

    def _report(self) -> bytes:
        self.frames_reported += 1
        return self._measurement()

    def _measurement(self) -> bytes:
        self._step()
        pm2_5 = self._fine if self.pm2_5 is None else self.pm2_5
        pm10 = self._fine + self._coarse if self.pm10 is None else self.pm10
        return measurement_frame(_tenths(pm2_5), _tenths(pm10), self.device_id)

    def _step(self) -> None:
        """Advance the random walk one measurement: slow drift back towards a typical level."""
        self._fine += 0.05 * (10.0 - self._fine) + self._rng.gauss(0, 0.4)
        self._coarse += 0.05 * (6.0 - self._coarse) + self._rng.gauss(0, 0.3)
        self._fine = min(max(self._fine, 0.5), 500.0)
        self._coarse = min(max(self._coarse, 0.0), 499.0)


@register("sds011")
def sds011_device(**kwargs: Any) -> Sds011Device:
    """Factory for the simulator and tests; every keyword has a default."""
    return Sds011Device(**kwargs)
