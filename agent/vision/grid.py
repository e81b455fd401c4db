"""Where a counter's intervals end: on the UTC grid, timed by the monotonic clock.

Frames are timed by the monotonic clock, which nothing steps, so an interval
holds exactly the frames it should. Receivers want the ends on the wall
clock's grid of ``interval_s`` (12:05:00, 12:06:00), the same on every box.
The two clocks are tied by their offset (wall minus monotonic), read when the
counter starts. That offset moves in two ways:

* **drift**: NTP slews the wall clock by up to 0.5 ms/s, some tens of ms per
  interval. The interval in progress keeps its grid point; only the monotonic
  moment it falls on moves.
* **a step**: NTP setting a clock that booted hours behind (a Raspberry Pi has
  no real-time clock), an operator's ``date -s``, a spoofed time source. Kept on
  the old offset, every later end would land off the grid, and the daemon
  replaces a counter that sends more than one off-grid end
  (``agent.vision.record``), losing the interval in progress. Instead the
  interval in progress is cut where the step was seen, reported with that
  moment's new wall time (off the grid: an interval a step ended), and the next
  one ends on the grid of the new time. No interval grows longer than
  ``interval_s``, so none can hold more frames than one may. After a step back
  the ends go back with the wall clock, as every sensor's time stamps do; the
  daemon's gate sees each step on its own clocks and allows for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agent.clock import Clock

log = logging.getLogger(__name__)

JITTER_MS = 50
"""Offset moves below this are the two clock reads' own jitter, not a move."""


@dataclass(frozen=True, slots=True)
class Anchoring:
    """What the pipeline does after the clocks moved (``UtcGrid.follow``)."""

    end_s: float
    """Monotonic end of the interval in progress (after the cut, of the next one)."""
    cut_s: float | None
    """A step: close the interval in progress at this monotonic time first, whether or
    not its old end has passed (the step makes that end meaningless)."""


class UtcGrid:
    """Converts the counter's monotonic interval ends to UTC and follows wall-clock moves."""

    def __init__(self, clock: Clock, interval_s: float) -> None:
        self._clock = clock
        self._step_ms = round(interval_s * 1000)
        self._offset_ms = self._read_offset()
        self._seen_ms = self._offset_ms
        """The offset :meth:`moved` read last."""
        wall_ms = round(self._clock.monotonic() * 1000) + self._offset_ms
        self._start_ms = wall_ms - wall_ms % self._step_ms
        """The grid point the interval in progress began at (UTC ms)."""
        self._last_ms: int | None = None
        """The last end reported, on the current time line."""
        self._cut: tuple[float, int] | None = None
        """The last cut at a step: its monotonic time and its end (UTC ms)."""

    @property
    def start_s(self) -> float:
        """Monotonic time of the grid point the interval in progress began at."""
        return self._mono_s(self._start_ms)

    @property
    def step_tolerance_ms(self) -> int:
        """Moves up to this are drift (the same grid point); farther ones are steps."""
        return min(1000, self._step_ms // 4)

    def moved(self) -> bool:
        """Whether the wall clock moved against the monotonic one since the grid was anchored."""
        self._seen_ms = self._read_offset()
        return abs(self._seen_ms - self._offset_ms) >= JITTER_MS

    def follow(self) -> Anchoring:
        """Anchor the grid on the offset :meth:`moved` saw: what the pipeline does next."""
        moved = self._seen_ms - self._offset_ms
        self._offset_ms = self._seen_ms
        if abs(moved) <= self.step_tolerance_ms:
            return Anchoring(self._mono_s(self._start_ms + self._step_ms), None)
        now_s = self._clock.monotonic()
        cut_ms = -(-(round(now_s * 1000) + self._offset_ms) // 1000) * 1000
        end_ms = (cut_ms // self._step_ms + 1) * self._step_ms  # the first grid point after
        self._start_ms = end_ms - self._step_ms
        self._cut = (now_s, cut_ms)
        self._last_ms = None  # what went before is on another time line
        log.warning("the wall clock stepped by %+.1f s: the interval in progress ends now "
                    "(%d ms UTC), the next one at %d ms UTC, on the grid",
                    moved / 1000, cut_ms, end_ms)
        return Anchoring(self._mono_s(end_ms), now_s)

    def reported(self, end_s: float) -> int:
        """UTC ms of an interval end the pipeline closed at monotonic ``end_s``.

        The interval cut at a step ends at that moment's new wall time, in whole
        seconds. Otherwise an end within the drift tolerance of a grid point not
        yet reported is that grid point (the next interval begins there); any
        other (the partial interval at a shutdown or the end of a video) is the
        next whole second, later than the last end reported, so it never repeats one.
        """
        utc_ms = round(end_s * 1000) + self._offset_ms
        nearest = round(utc_ms / self._step_ms) * self._step_ms
        if self._cut is not None and end_s == self._cut[0]:
            end_ms = self._cut[1]
        elif (abs(utc_ms - nearest) <= self.step_tolerance_ms
              and (self._last_ms is None or nearest > self._last_ms)):
            self._start_ms = end_ms = nearest
        else:
            end_ms = -(-utc_ms // 1000) * 1000
            if self._last_ms is not None:
                end_ms = max(end_ms, self._last_ms + 1000)
        self._last_ms = end_ms
        return end_ms

    def _mono_s(self, utc_ms: int) -> float:
        return (utc_ms - self._offset_ms) / 1000

    def _read_offset(self) -> int:
        return self._clock.wall_ms() - round(self._clock.monotonic() * 1000)
