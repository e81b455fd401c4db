"""A clock for tests: time moves only when the code under test waits, or the test says so.

Handed to a component in place of :data:`agent.clock.SYSTEM`, it honours every wait
exactly (each recorded in :attr:`FakeClock.slept`, in order) but costs no real time,
so a minute of backoff or a datasheet delay is checked instead of waited out. The
emulators take it as their clock too (it is callable), so a device and its driver
share one time line.
"""

from __future__ import annotations

import threading
import time

from agent.clock import Clock


class FakeClock(Clock):
    """Monotonic time that only moves when someone sleeps or waits (or the test says so)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self._wall_at_start_ms = time.time_ns() // 1_000_000 - round(now * 1000)
        """The real wall clock when the fake one was made: records a real child process
        stamps stay plausible to a daemon on fake time."""
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
        return self._wall_at_start_ms + round(self.now * 1000) + self.wall_offset_ms

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
