"""Where people walk, as a coarse grid of k-anonymous cells (set-up mode, counter side).

Runs inside the counter process. Foot points of proven tracks fall into a fixed
grid of ``COLS`` × ``ROWS`` cells over the frame (each cell 1/16 of the width and
1/12 of the height). A cell remembers *which* tracks stood in it and when it last
saw each, so one person lingering counts once, not once per frame; sightings older
than the window are forgotten. Only cells where at least ``k`` different people
stood within the window leave this module, as a count; the others are blank. Track
numbers, foot points and times never leave it: :meth:`HeatGrid.cells` returns cell
index → number of people, nothing else.

Pure: no clock, no I/O; the caller passes the frame's time.
"""

from __future__ import annotations

from collections.abc import Iterable

COLS = 16
ROWS = 12
CELLS = COLS * ROWS

Sighting = tuple[int, float, float]
"""(track number, foot x, foot y) in native frame pixels."""


def cell_of(x: float, y: float, width: float, height: float) -> int | None:
    """Row-major cell index of a point of a ``width`` × ``height`` frame; None outside it."""
    if not (0 <= x < width and 0 <= y < height):
        return None
    return int(y * ROWS / height) * COLS + int(x * COLS / width)


class HeatGrid:
    """Distinct people per cell over a sliding window; only cells of ≥ k people are told."""

    def __init__(self, k: int, window_s: float) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        self.k = k
        self.window_s = window_s
        self._seen: dict[int, dict[int, float]] = {}
        """cell → {track number → last time seen in it}."""

    def add(self, t_s: float, width: float, height: float, sightings: Iterable[Sighting]) -> None:
        """Note where each track's foot point is at ``t_s``."""
        for track, x, y in sightings:
            cell = cell_of(x, y, width, height)
            if cell is not None:
                self._seen.setdefault(cell, {})[track] = t_s

    def cells(self, t_s: float) -> dict[int, int]:
        """Cell index → distinct people within the window, for cells of at least k only."""
        self._expire(t_s)
        return {cell: len(tracks) for cell, tracks in sorted(self._seen.items())
                if len(tracks) >= self.k}

    def people(self, t_s: float) -> int:
        """Distinct people seen anywhere within the window (the largest a cell can hold)."""
        self._expire(t_s)
        return len({track for tracks in self._seen.values() for track in tracks})

    def clear(self) -> None:
        self._seen.clear()

    def _expire(self, t_s: float) -> None:
        oldest = t_s - self.window_s
        for cell in list(self._seen):
            tracks = {track: seen for track, seen in self._seen[cell].items() if seen > oldest}
            if tracks:
                self._seen[cell] = tracks
            else:
                del self._seen[cell]
