"""Set-up mode on the daemon's side: a session with an end, its lease, its latest view.

A session is switched on for a number of minutes (at most the camera's
``setup.max_minutes``) and ends by itself. While it lasts, the supervisor renews the
counter's lease (``agent.vision.setup_mode``) every ``RENEW_EVERY_S``; setup records
are admitted only while a session lasts plus the lease it may still hold
(``LEASE_S`` and a little slack). A setup record at any other time is a breach of
the boundary like any other: the supervisor refuses it and replaces the counter.

What is kept is the latest admitted record only, in memory, for the page: frame size,
crossings since set-up began, k-anonymous heat cells. It is never stored, logged or
published, and it is dropped when the session ends.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from agent.vision.record import Record, RecordRejected
from agent.vision.zygote import LEASE_S

RENEW_EVERY_S = 5.0
GRACE_S = LEASE_S + 3.0
"""After a session ends, how long the counter may still send what its lease allowed."""


@dataclass(frozen=True, slots=True)
class SetupView:
    """The latest set-up state of one camera (numbers the boundary admitted)."""

    frame: tuple[int, int]
    people: int
    """Distinct people seen within the heat window (0 while fewer than k)."""
    cells: dict[int, int]
    """Heat map cell index → distinct people (only cells of at least k)."""
    lines: dict[str, tuple[int, int]]
    """Line name → (in, out) crossings since set-up began."""


class SetupSession:
    """One camera's set-up session; thread-safe (the page and the supervisor share it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = -math.inf
        self._next_renew = -math.inf
        self._view: SetupView | None = None

    def start(self, now_s: float, minutes: float) -> None:
        with self._lock:
            self._until = now_s + minutes * 60.0
            self._next_renew = -math.inf

    def stop(self, now_s: float) -> None:
        with self._lock:
            self._until = min(self._until, now_s)
            self._view = None

    def remaining_s(self, now_s: float) -> float:
        """Seconds the session still lasts (0 when off)."""
        with self._lock:
            return max(0.0, self._until - now_s)

    def renew_due(self, now_s: float) -> bool:
        """True when the counter's lease should be renewed now (and counts it as renewed)."""
        with self._lock:
            if now_s >= self._until or now_s < self._next_renew:
                return False
            self._next_renew = now_s + RENEW_EVERY_S
            return True

    def admit(self, record: Record, now_s: float) -> None:
        """Keep an admitted setup record as the latest view, or refuse one out of session."""
        with self._lock:
            if now_s > self._until + GRACE_S:
                raise RecordRejected("a setup record while set-up mode is off")
            if now_s > self._until:
                return  # the lease the counter still holds: received, not kept
            values = dict(record.values)
            lines: dict[str, tuple[int, int]] = {}
            for name, value in values.items():
                if name.startswith("setup_line_"):
                    line, _, direction = name.removeprefix("setup_line_").rpartition("_")
                    was = lines.get(line, (0, 0))
                    lines[line] = (int(value), was[1]) if direction == "in" \
                        else (was[0], int(value))
            self._view = SetupView(
                (int(values["frame_width"]), int(values["frame_height"])),
                int(values.get("heat_people", 0)),
                {int(n.removeprefix("heat_cell_")): int(v) for n, v in values.items()
                 if n.startswith("heat_cell_")}, lines)

    def view(self, now_s: float) -> SetupView | None:
        with self._lock:
            if now_s >= self._until:
                self._view = None
            return self._view

    def forget(self) -> None:
        """A new counter process starts with an empty grid: so does the view."""
        with self._lock:
            self._view = None
            self._next_renew = -math.inf
