"""Sampling slots on the monotonic clock.

Slots sit at ``origin + k * interval``. When a reading overruns one or more
slots they are skipped, not made up in a burst, so a slow sensor or a
suspended process never produces bunched samples; wall-clock steps (NTP,
RTC-less boot) cannot move a slot because the wall clock is never consulted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Schedule:
    """Evenly spaced slots on a monotonic timeline."""

    origin: float
    interval_s: float

    def slot_at_or_after(self, now: float) -> float:
        """The first slot not earlier than ``now``."""
        k = max(0, math.ceil((now - self.origin) / self.interval_s - 1e-9))
        return self.origin + k * self.interval_s

    def next_slot(self, previous: float, now: float) -> tuple[float, int]:
        """The slot after ``previous`` that is still ahead of ``now``, and how many were missed."""
        candidate = previous + self.interval_s
        if candidate > now:
            return candidate, 0
        upcoming = self.slot_at_or_after(now)
        if upcoming <= now:
            upcoming += self.interval_s
        missed = round((upcoming - candidate) / self.interval_s)
        return upcoming, missed
