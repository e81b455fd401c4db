"""Set-up mode inside the counter process: a lease, a heat grid, crossings since it began.

The record pipe is one-way, so the daemon switches set-up mode on with a signal
(``SETUP_SIGNAL``, SIGUSR1): each one is a lease of ``LEASE_S`` seconds, renewed by
the daemon every few seconds while its session lasts. When the daemon stops renewing
(the session ended, was stopped, or the daemon died) the lease runs out, the grid and
the totals are dropped, and nothing more is sent. A signal carries no data, so the
daemon can say nothing to the counter through it but "keep going".

While the lease holds, every proven track matched in a frame adds its foot point to
the :class:`HeatGrid`, every counted crossing adds to its line's total, and every
``SEND_EVERY_S`` one setup record goes out: the frame's size, the totals, and the
cells of at least k distinct people (with their number of people). No sighting is
accumulated while set-up mode is off.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

from agent.clock import SYSTEM, Clock
from agent.config.camera_setup import SetupConfig
from agent.vision.counting import FrameCounts
from agent.vision.heatmap import HeatGrid
from agent.vision.tracker import FrameTracks
from agent.vision.zygote import LEASE_S

SEND_EVERY_S = 2.0


class SetupMode:
    """The counter's half of a set-up session (module docstring)."""

    def __init__(self, config: SetupConfig, lines: Sequence[str],
                 send: Callable[[Iterable[tuple[str, float]]], None], *,
                 clock: Clock = SYSTEM) -> None:
        self._grid = HeatGrid(config.min_people, config.window_s)
        self._lines = tuple(lines)
        self._send = send
        self._clock = clock
        self._lease_until = -math.inf
        self._totals: dict[str, int] = {}
        self._frame_size: tuple[float, float] | None = None
        self._next_send = -math.inf

    def renew(self) -> None:
        """The daemon's signal arrived (safe to call from a signal handler)."""
        self._lease_until = self._clock.monotonic() + LEASE_S

    @property
    def on(self) -> bool:
        return self._clock.monotonic() < self._lease_until

    def observe(self, frame_size: tuple[float, float] | None, tracks: FrameTracks,
                counts: FrameCounts) -> None:
        """Take one counted frame into the heat grid and the totals, while the lease holds."""
        if not self.on or frame_size is None:
            return
        self._frame_size = frame_size
        self._grid.add(self._clock.monotonic(), *frame_size,
                       ((t.track_id, *t.foot) for t in tracks.confirmed
                        if t.proven and t.time_since_update == 0))
        for crossing in counts.crossings:
            name = f"setup_line_{crossing.line}_{crossing.direction.value}"
            self._totals[name] = self._totals.get(name, 0) + 1

    def flush(self) -> None:
        """Send the state when it is due; forget everything once the lease has run out."""
        now = self._clock.monotonic()
        if not self.on:
            if self._frame_size is not None:
                self._grid.clear()
                self._totals.clear()
                self._frame_size = None
                self._next_send = -math.inf
            return
        if self._frame_size is None or now < self._next_send:
            return
        self._next_send = now + SEND_EVERY_S
        width, height = self._frame_size
        values: list[tuple[str, float]] = [("frame_width", round(width)),
                                           ("frame_height", round(height))]
        values += [(f"setup_line_{line}_{d}", self._totals.get(f"setup_line_{line}_{d}", 0))
                   for line in self._lines for d in ("in", "out")]
        people = self._grid.people(now)
        if people >= self._grid.k:
            values.append(("heat_people", people))
            values += [(f"heat_cell_{cell}", n) for cell, n in self._grid.cells(now).items()]
        self._send(values)
