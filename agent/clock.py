"""The one clock every timed component takes: monotonic time, wall time, and waiting.

Why one object: the sampler, the drivers (datasheet delays, reply deadlines), the
forwarder, the counter supervisor and the frame source all decide by time and all
wait. When each reads ``time`` itself, a test can only patch modules (``time.sleep``
for the whole process) or wait in real time. Handed a :class:`Clock`, a component
waits *through* it, so a test passes a clock of its own (``tests/clock.py``) that
moves only when the component waits, and a minute of backoff costs nothing.

Waiting on an :class:`threading.Event` goes through the clock too
(:meth:`Clock.wait`), because a stoppable wait is how every loop here sleeps.

This module imports nothing of ours: every layer may take a clock.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """The system's clocks; subclassed by tests to make time controllable."""

    def monotonic(self) -> float:
        """Seconds on a clock no NTP step moves: schedules, deadlines, ages."""
        return time.monotonic()

    def wall_ms(self) -> int:
        """UTC milliseconds since the epoch: time stamps only, never a schedule."""
        return time.time_ns() // 1_000_000

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` unconditionally (a datasheet delay between two bus transfers)."""
        time.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait up to ``seconds`` for ``event``; True when it is set (a stop, a wake-up)."""
        return event.wait(seconds)


SYSTEM = Clock()
"""The clock every component takes unless it is handed another."""
