"""A clock for tests: time moves only when the code under test waits, or the test says so.

Handed to a component in place of :data:`agent.clock.SYSTEM`, it honours every wait
exactly (each recorded in :attr:`FakeClock.slept`, in order) but costs no real time,
so a minute of backoff or a datasheet delay is checked instead of waited out. The
emulators take it as their clock too (it is callable), so a device and its driver
share one time line.
"""

from __future__ import annotations

import threading

from agent.clock import Clock

WALL_EPOCH_MS = 1_767_225_600_000
"""2026-01-01T00:00:00Z: the fake wall clock's reading at monotonic 0."""


class FakeClock(Clock):
    """Monotonic time that only moves when someone sleeps or waits (or the test says so)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.wall_offset_ms = 0
        """A step of the wall clock alone (NTP), as a test sets it."""
        self.slept: list[float] = []
        """Every sleep and every timed-out wait, in order."""
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def wall_ms(self) -> int:
        return WALL_EPOCH_MS + round(self.now * 1000) + self.wall_offset_ms

    def sleep(self, seconds: float) -> None:
        self._waited(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Set already: True at once; otherwise the time passes, then whether it is set."""
        if event.is_set():
            return True
        self._waited(seconds)
        return event.is_set()

    def _waited(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += max(0.0, seconds)
