"""Counting lines, zone occupancy and density alerts over tracker output.

``SceneCounter.update(frame)`` turns one frame of tracks into a
``FrameCounts``; ``IntervalCounter`` (``agent.vision.intervals``) folds those
into per-interval records. Geometry conventions (pixels, y down, the foot
point as a person's position, "right of A→B") are in ``agent.vision.geometry``.

Line rules
----------
* A track's position is the **foot point** of its filtered box, taken only
  from frames where the track was matched to a detection (a coasting
  prediction never crosses a line).
* The line has a hysteresis **band** of ``band_px`` (total width, centred on
  the line). A track's *side* is only decided while its foot point is outside
  the band: ``left`` (d ≤ −band/2) or ``right`` (d ≥ +band/2), d being the
  signed distance of ``geometry.signed_distance``.
* A **crossing** is a change of decided side: left → right counts **in**,
  right → left counts **out**. Dithering inside the band changes nothing.
* A track whose first positions are inside the band has no side yet: it
  inherits nothing from any other track and cannot count until it has been
  seen outside the band on one side and then outside the band on the other.
  So an id switch near the line (the old id ends in the band, the new one is
  born there) adds no count; it loses that one passage instead, which is the
  safe direction for a people counter.
* **Segment limit**: the crossing counts only if the foot point's path met the
  line within the segment: the last sign change of d before the side changed,
  interpolated linearly between the two observations around it, must project
  onto the segment (0 ≤ u ≤ 1, ``geometry.projection``). Walking round the
  end of the line changes the side without counting.
* **No double count**: a track never counts the same direction twice in a
  row on one line: after an *in* it must count an *out* before another *in*.
* Crossings by a tentative or unproven track (``Track.proven``: not yet
  seen to be a person) are held back and counted when it is confirmed and
  proven (at that frame's time); a track that dies before is never counted.
* **Gaps**: a track's side is remembered between observations however far
  apart they are (a Pi analysing every 5th frame, a person hidden for a
  while), so a change of side between any two of them counts, once; a track
  first seen on one side and last seen on the other counts once.

Zone rules
----------
* Occupancy of a zone: confirmed, proven tracks whose foot point is inside
  the polygon (even-odd rule), counting tracks lost for at most ``coast_s``
  seconds at their predicted position (a person hidden behind a lamp post
  is still there) unless that box comes within ``exit_margin`` box widths of
  the frame's left, right or bottom border (they walked out); whole-frame
  occupancy counts all of them. Density = occupancy / ``area_m2`` (persons/m²).
* Density alerts with hysteresis: *on* when density ≥ ``density_on``, then
  *off* when density ≤ ``density_off``; each change is a ``DensityAlert`` in
  the frame's result at once, not at the end of the interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from agent.vision.geometry import Point, points_in_polygon, projection, signed_distance
from agent.vision.tracker import FrameTracks, Track


class Direction(StrEnum):
    """Direction of a line crossing; published as the string value."""

    IN = "in"
    """From the left of start→end to its right (as seen on screen)."""
    OUT = "out"
    """From the right of start→end to its left."""


@dataclass(frozen=True, slots=True)
class CountingLine:
    """A directed counting segment in frame pixels."""

    name: str
    start: Point
    end: Point
    band_px: float
    """Total width of the hysteresis band centred on the line, px (the configuration's
    ``hysteresis_px``, whose default says how it was chosen)."""

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError(f"line {self.name!r}: start and end must differ")
        if self.band_px < 0:
            raise ValueError(f"line {self.name!r}: band_px must be >= 0")


@dataclass(frozen=True, slots=True)
class Zone:
    """A polygon on the ground plane, optionally with its real area for density."""

    name: str
    polygon: tuple[Point, ...]
    """Vertices in frame pixels, in order (either orientation); at least three."""
    area_m2: float | None = None
    """Ground area the polygon covers, m² (measured on site); enables density."""
    density_on: float | None = None
    """Alert switches on when density ≥ this, persons/m² (needs area_m2)."""
    density_off: float | None = None
    """Alert switches off when density ≤ this, persons/m²; must be < density_on."""

    def __post_init__(self) -> None:
        if len(self.polygon) < 3:
            raise ValueError(f"zone {self.name!r}: a polygon needs at least three vertices")
        if self.area_m2 is not None and self.area_m2 <= 0:
            raise ValueError(f"zone {self.name!r}: area_m2 must be > 0")
        on, off = self.density_on, self.density_off
        if on is None and off is None:
            return
        if on is None or off is None:
            raise ValueError(f"zone {self.name!r}: set both density_on and density_off")
        if self.area_m2 is None:
            raise ValueError(f"zone {self.name!r}: density alerts need area_m2")
        if not 0 <= off < on:
            raise ValueError(f"zone {self.name!r}: need 0 <= density_off < density_on")


@dataclass(frozen=True, slots=True)
class Crossing:
    """One counted passage of a track over a line."""

    line: str
    track_id: int
    direction: Direction
    t_s: float


@dataclass(frozen=True, slots=True)
class DensityAlert:
    """A zone's density alert switching on or off."""

    zone: str
    t_s: float
    on: bool
    density: float
    """Density (persons/m²) in the frame that switched the alert."""


@dataclass(frozen=True, slots=True)
class ZoneOccupancy:
    """One zone in one frame."""

    zone: str
    count: int
    density: float | None
    """Persons/m², or None when the zone has no area."""


@dataclass(frozen=True, slots=True)
class FrameCounts:
    """What one frame adds to the counts."""

    t_s: float
    crossings: tuple[Crossing, ...]
    zones: tuple[ZoneOccupancy, ...]
    occupancy: int
    """Whole-frame occupancy: confirmed tracks present (see ``coast_s``)."""
    alerts: tuple[DensityAlert, ...] = ()


@dataclass(slots=True)
class _LineMemory:
    """What one line remembers about one track."""

    side: int = 0
    """-1 left, +1 right, 0 not yet seen outside the band."""
    prev_d: float | None = None
    prev_u: float = 0.0
    cross_u: float | None = None
    """Segment position of the latest zero crossing of d."""
    last: Direction | None = None
    """Direction of the last crossing counted (or held) for this track."""

    def step(self, d: float, u: float, half_band: float) -> Direction | None:
        """Feed one observation; return the direction of a completed crossing."""
        if self.prev_d is not None and (self.prev_d < 0) != (d < 0):
            a = self.prev_d / (self.prev_d - d)
            self.cross_u = self.prev_u + a * (u - self.prev_u)
        self.prev_d, self.prev_u = d, u
        if abs(d) < half_band:
            return None
        side = -1 if d < 0 else 1
        previous, self.side = self.side, side
        if previous in (0, side):
            return None
        direction = Direction.IN if side > 0 else Direction.OUT
        if self.cross_u is None or not 0.0 <= self.cross_u <= 1.0 or direction == self.last:
            return None
        self.last = direction
        return direction


@dataclass(slots=True)
class _TrackMemory:
    lines: list[_LineMemory]
    held: list[list[Direction]]
    """Per line, crossings made while tentative, counted on confirmation."""


EXIT_MARGIN = 0.5
"""How close (box widths) to the left, right or bottom border a coasting track's predicted
box may come before it counts as gone (``SceneCounter._present``). Chosen on vtest's tuning
half with bench/accuracy.py at every 1st/2nd/3rd/5th frame: 0 (the border itself) gave
occupancy MAE 0.26/0.43/0.28/0.80 and bias +0.08/+0.19/0.00/−0.06, 0.25 gave
0.19/0.40/0.28/0.78, 0.5 gave 0.18/0.34/0.27/0.77 (bias −0.02/+0.10/−0.01/−0.09), 1.0
gave 0.19/0.35/0.29/0.78: people who left at the right edge were still counted for up to
``coast_s``."""


class SceneCounter:
    """Applies the line and zone rules of the module docstring, frame by frame."""

    def __init__(
        self,
        lines: Sequence[CountingLine] = (),
        zones: Sequence[Zone] = (),
        *,
        coast_s: float = 0.0,
        exit_margin: float = EXIT_MARGIN,
        frame_size: tuple[float, float] | None = None,
    ) -> None:
        names = [x.name for x in lines] + [z.name for z in zones]
        if len(set(names)) != len(names):
            raise ValueError("line and zone names must be unique")
        if coast_s < 0 or exit_margin < 0:
            raise ValueError("coast_s and exit_margin must be >= 0")
        self.lines = tuple(lines)
        self.zones = tuple(zones)
        self.coast_s = coast_s
        self.exit_margin = exit_margin
        """Lost tracks count towards occupancy for this long (s) at their prediction."""
        self.frame_size = frame_size
        """(width, height) of the frame in the tracks' pixels: a coasting track predicted at
        or over its border has walked out and no longer counts. None: no limit."""
        self._memory: dict[int, _TrackMemory] = {}
        self._alert_on = [False] * len(self.zones)

    def update(self, frame: FrameTracks) -> FrameCounts:
        """Count one frame of tracker output."""
        crossings = self._cross(frame)
        present = [t for t in frame.confirmed if t.proven and self._present(t)]
        feet = np.array([t.foot for t in present], dtype=np.float64).reshape(-1, 2)
        occupancy: list[ZoneOccupancy] = []
        alerts: list[DensityAlert] = []
        for k, zone in enumerate(self.zones):
            count = int(np.count_nonzero(points_in_polygon(feet, zone.polygon)))
            density = None if zone.area_m2 is None else count / zone.area_m2
            occupancy.append(ZoneOccupancy(zone.name, count, density))
            alert = self._alert(k, zone, density, frame.t_s)
            if alert is not None:
                alerts.append(alert)
        return FrameCounts(
            t_s=frame.t_s,
            crossings=tuple(crossings),
            zones=tuple(occupancy),
            occupancy=len(present),
            alerts=tuple(alerts),
        )

    def _present(self, track: Track) -> bool:
        """Whether a proven track counts as in view: seen now, or coasting briefly in frame.

        A coasting track whose predicted box comes within ``exit_margin`` box widths of
        the left, right or bottom border has walked out: detections are clipped to the
        frame, and the detector stops finding someone about half out of it, so the
        prediction of a leaving person stops short of the border. (Not the top: people
        are small there and walk away from the camera rather than out of its view.)
        """
        if track.time_since_update == 0:
            return True
        if track.lost_s > self.coast_s:
            return False
        if self.frame_size is None:
            return True
        width, height = self.frame_size
        margin = self.exit_margin * (track.x2 - track.x1)
        return (margin < track.x1 and track.x2 < width - margin
                and track.y1 > 0.0 and track.y2 < height - margin)

    def _cross(self, frame: FrameTracks) -> list[Crossing]:
        alive = {t.track_id for t in frame.confirmed} | {t.track_id for t in frame.tentative}
        for gone in self._memory.keys() - alive:  # the tracker never revives a dead id
            del self._memory[gone]
        observed = [t for t in frame.confirmed if t.time_since_update == 0]
        observed += list(frame.tentative)
        if not observed or not self.lines:
            return []
        feet = np.array([t.foot for t in observed], dtype=np.float64)
        d = [signed_distance(feet, x.start, x.end) for x in self.lines]
        u = [projection(feet, x.start, x.end) for x in self.lines]
        crossings: list[Crossing] = []
        for i, track in enumerate(observed):
            memory = self._memory.get(track.track_id)
            if memory is None:
                memory = _TrackMemory([_LineMemory() for _ in self.lines], [[] for _ in self.lines])
                self._memory[track.track_id] = memory
            for k, line in enumerate(self.lines):
                held = memory.held[k]
                step = memory.lines[k].step(float(d[k][i]), float(u[k][i]), line.band_px / 2)
                if step is not None:
                    held.append(step)
                if track.confirmed and track.proven:
                    crossings.extend(
                        Crossing(line.name, track.track_id, x, frame.t_s) for x in held
                    )
                    held.clear()
        return crossings

    def _alert(self, k: int, zone: Zone, density: float | None, t_s: float) -> DensityAlert | None:
        if density is None or zone.density_on is None or zone.density_off is None:
            return None
        if not self._alert_on[k] and density >= zone.density_on:
            self._alert_on[k] = True
            return DensityAlert(zone.name, t_s, True, density)
        if self._alert_on[k] and density <= zone.density_off:
            self._alert_on[k] = False
            return DensityAlert(zone.name, t_s, False, density)
        return None
