"""Per-interval records of line counts, occupancy and density, with suppression.

``IntervalCounter.add(frame_counts)`` accumulates ``FrameCounts`` from
``agent.vision.counting.SceneCounter`` and returns an ``IntervalRecord`` each
time a frame's timestamp passes the end of the current interval.

Rules, stated once:

* Intervals lie on a grid of ``interval_s`` starting at ``start_s`` (default:
  the first frame's time): interval k holds frames with
  start + k·I ≤ t < start + (k+1)·I. ``move_end`` moves the current
  interval's end (the wall clock stepped, ``agent.vision.grid``) and the grid
  goes on from the new end. Intervals without any frame (the
  camera or detector stalled) are still reported, with ``frames == 0`` and
  every value ``None``: no data is not zero people.
* Means are over processed frames (each frame one sample), maxima are the
  largest single-frame value. Frames arrive at roughly even spacing; when the
  detector falls behind, fewer samples carry the same weight each.
* Density mean/max are occupancy mean/max divided by the zone's area.
* Small-count suppression (``suppress_below = k > 0``): every person figure
  below k (line in/out counts, occupancy and density means and maxima) is
  reported as ``None``. Zero is suppressed too: if only 1…k−1 were withheld,
  a withheld value would itself say that someone was there. Density follows
  its occupancy figure. Alerts are never suppressed: the configuration
  refuses an alert threshold below k people (``density_on × area_m2 ≥ k``).
* Complementary suppression: a zone's figure is part of the whole frame's,
  so when a zone's occupancy mean (or maximum) is withheld, the whole-frame
  mean (or maximum) is withheld too; otherwise whole-frame minus the other
  zones would give the withheld figure back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from agent.vision.counting import CountingLine, DensityAlert, Direction, FrameCounts, Zone


@dataclass(frozen=True, slots=True)
class LineTotals:
    """Crossings of one line in one interval (None: suppressed or no frames)."""

    line: str
    in_count: int | None
    out_count: int | None


@dataclass(frozen=True, slots=True)
class ZoneStats:
    """Occupancy (persons) and density (persons/m²) of one zone in one interval."""

    zone: str
    occupancy_mean: float | None
    occupancy_max: int | None
    density_mean: float | None
    """None also when the zone has no area."""
    density_max: float | None


@dataclass(frozen=True, slots=True)
class IntervalRecord:
    """Everything the counter reports for one interval: numbers only."""

    start_s: float
    end_s: float
    """Interval bounds on the frame clock (seconds, as given to the tracker)."""
    frames: int
    """Frames processed in the interval; 0 means no data."""
    lines: tuple[LineTotals, ...]
    zones: tuple[ZoneStats, ...]
    occupancy_mean: float | None
    """Whole-frame occupancy (persons)."""
    occupancy_max: int | None
    alerts: tuple[DensityAlert, ...]
    """Density alerts raised (already emitted per frame), in order."""
    suppress_below: int
    """The k that was applied (0: no suppression)."""


class _Sums:
    """Running totals of one interval."""

    def __init__(self, n_lines: int, n_zones: int) -> None:
        self.frames = 0
        self.ins = [0] * n_lines
        self.outs = [0] * n_lines
        self.zone_sum = [0] * n_zones
        self.zone_max = [0] * n_zones
        self.occ_sum = 0
        self.occ_max = 0
        self.alerts: list[DensityAlert] = []


class IntervalCounter:
    """Folds per-frame counts into interval records (see the module rules)."""

    def __init__(
        self,
        lines: Sequence[CountingLine],
        zones: Sequence[Zone],
        *,
        interval_s: float = 60.0,
        suppress_below: int = 0,
        start_s: float | None = None,
    ) -> None:
        if not interval_s > 0 or suppress_below < 0:
            raise ValueError("need interval_s > 0 and suppress_below >= 0")
        self.lines = tuple(lines)
        self.zones = tuple(zones)
        self.interval_s = interval_s
        self.suppress_below = suppress_below
        self._start = start_s
        self._end = None if start_s is None else start_s + interval_s
        self._index = {x.name: k for k, x in enumerate(self.lines)}
        self._sums = _Sums(len(self.lines), len(self.zones))

    def add(self, counts: FrameCounts) -> list[IntervalRecord]:
        """Add one frame; return the intervals it closed (usually none, sometimes one)."""
        if self._start is None or self._end is None:
            self._start, self._end = counts.t_s, counts.t_s + self.interval_s
        if counts.t_s < self._start:
            raise ValueError("frame time is before the current interval")
        closed: list[IntervalRecord] = []
        while counts.t_s >= self._end:
            closed.append(self._close(self._end))
        s = self._sums
        s.frames += 1
        for crossing in counts.crossings:
            k = self._index[crossing.line]
            if crossing.direction is Direction.IN:
                s.ins[k] += 1
            else:
                s.outs[k] += 1
        for k, zone in enumerate(counts.zones):
            s.zone_sum[k] += zone.count
            s.zone_max[k] = max(s.zone_max[k], zone.count)
        s.occ_sum += counts.occupancy
        s.occ_max = max(s.occ_max, counts.occupancy)
        s.alerts.extend(counts.alerts)
        return closed

    def flush(self, end_s: float) -> IntervalRecord | None:
        """Close the current, partial interval at ``end_s`` (e.g. at shutdown).

        The grid restarts at ``end_s``. Returns None when no frame has arrived
        since the last record.
        """
        if self._start is None:
            return None
        end_s = max(end_s, self._start)
        if self._sums.frames == 0:
            self._start, self._end = end_s, end_s + self.interval_s
            return None
        return self._close(end_s)

    def move_end(self, end_s: float) -> None:
        """End the current interval at ``end_s`` instead; the grid goes on from there."""
        self._end = end_s

    def _close(self, end_s: float) -> IntervalRecord:
        assert self._start is not None
        s, k = self._sums, self.suppress_below
        n = s.frames
        lines = tuple(
            LineTotals(x.name, _keep(s.ins[i], k, n), _keep(s.outs[i], k, n))
            for i, x in enumerate(self.lines)
        )
        zones = []
        for i, zone in enumerate(self.zones):
            mean = _keep(s.zone_sum[i] / n if n else 0.0, k, n)
            peak = _keep(s.zone_max[i], k, n)
            area = zone.area_m2
            zones.append(
                ZoneStats(
                    zone.name,
                    mean,
                    peak,
                    None if mean is None or area is None else mean / area,
                    None if peak is None or area is None else peak / area,
                )
            )
        occupancy_mean = _keep(s.occ_sum / n if n else 0.0, k, n)
        occupancy_max = _keep(s.occ_max, k, n)
        if any(z.occupancy_mean is None for z in zones):
            occupancy_mean = None
        if any(z.occupancy_max is None for z in zones):
            occupancy_max = None
        record = IntervalRecord(
            start_s=self._start,
            end_s=end_s,
            frames=n,
            lines=lines,
            zones=tuple(zones),
            occupancy_mean=occupancy_mean,
            occupancy_max=occupancy_max,
            alerts=tuple(s.alerts),
            suppress_below=k,
        )
        self._start, self._end = end_s, end_s + self.interval_s
        self._sums = _Sums(len(self.lines), len(self.zones))
        return record


_Number = TypeVar("_Number", int, float)


def _keep(value: _Number, k: int, frames: int) -> _Number | None:
    """The value, or None when there were no frames or it falls under the threshold k."""
    if frames == 0 or (k > 0 and value < k):
        return None
    return value
