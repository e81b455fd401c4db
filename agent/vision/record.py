"""The only thing that crosses from a counter process to the daemon: a counter record.

Why a format of our own: the counter holds camera frames, so whatever it may
send is the privacy boundary. Pickle (what ``multiprocessing.Queue`` uses)
would let any object across and runs code while it loads; a record here is a
fixed little-endian layout that can only say "quantity *i* of the camera's
schema has value *v*", and the daemon checks every byte before anything else
touches it:

    header  "LMC" | version u8 | kind u8 | schema fingerprint 8 bytes | utc_ms i64 | n u16
    n pairs index u16 | value f64

* **The schema is derived from the camera's configuration** (:func:`schema_for`):
  the interval figures, one in/out pair per configured line, occupancy (and
  density when the zone has an area) per configured zone and for the whole
  frame, one alert per zone with alert thresholds, the source state. Nothing
  else has an index, so nothing else can be said. Both sides derive it from
  the same config; the fingerprint proves they did.
* **Every value is checked and coarsened**: finite, within the quantity's
  bounds, whole where the quantity is a count, and rounded to a published
  resolution, so the low bits of a float cannot carry a hidden payload.
  Densities must equal occupancy ÷ area (and are recomputed from it), a mean
  may not exceed its maximum, totals may only grow, and no faster than a
  camera can drop frames or the source can reconnect.
* **Times are whole seconds** and interval ends lie on the UTC grid of
  ``interval_s`` (one partial interval per process life is allowed: the
  one reported at shutdown or at the end of a video; and one more per step of
  the wall clock the daemon sees, where the counter cuts its interval in
  progress, ``agent.vision.grid``).
* **Set-up records** (only while the daemon has set-up mode on, see
  ``agent.vision.setup_session``) say the frame's size, per-line crossing totals
  since set-up began and the heat map (``agent.vision.heatmap``): a cell is a
  number of distinct people of at least the camera's ``setup.min_people`` (k) and
  at most the people seen in the window, itself at least k; a blank cell is absent.
* **Size and rate are bounded**: a record is at most one interval's worth of
  pairs (the reader refuses longer messages before reading them), and a
  process may send one interval record per interval (plus slack for a
  catch-up after a stall), one alert per zone and one status change per
  second, alternating on/off.

Anything else raises :class:`RecordRejected`; the supervisor counts it
(``records_rejected_total``), kills the counter and starts a fresh one. The
reasons name the rule broken, never the offending value.

This module imports only the standard library and the config model: the
daemon loads it without numpy, OpenCV or onnxruntime.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum

from agent.config.camera import CameraConfig
from agent.vision.heatmap import CELLS

FORMAT_VERSION = 1
MAGIC = b"LMC"
HEADER = struct.Struct("<3sBB8sqH")
PAIR = struct.Struct("<Hd")
MAX_PERSONS = 1000
"""More people than any detector output we run can hold in one frame."""
MAX_TOTAL = 2**53
"""Lifetime totals (dropped frames, reconnects) stay exact in a float64 up to here."""
CAMERA_FPS_MAX = 120
"""More frames per second than any camera we read delivers (the rest are dropped frames)."""
OCCUPANCY_STEP = 0.01
"""Resolution of mean occupancy (persons)."""
CROSSINGS_PER_S = 20
"""Crossings of one line per second beyond which a figure is a fault, not a crowd."""
FRAME_SIDE_MAX = 16384
"""Pixels of a frame side no camera we read exceeds."""
PEOPLE_MAX = 1_000_000
"""Distinct people in a set-up window beyond any street's."""


class Kind(IntEnum):
    """What a record reports."""

    INTERVAL = 0
    """A closed reporting interval: counts, occupancy, the counter's own figures."""
    ALERT = 1
    """A zone's crowding alert switched on (1) or off (0)."""
    STATUS = 2
    """The camera source went up (1) or down (0)."""
    SETUP = 3
    """Set-up mode: frame size, crossings since set-up began, k-anonymous heat map cells."""


class RecordRejected(ValueError):
    """The counter sent something the schema does not allow; the message names the rule."""


@dataclass(frozen=True, slots=True)
class Quantity:
    """One thing a record may say, with the bounds and resolution it may say it in."""

    name: str
    kind: Kind
    high: float
    """Largest allowed value."""
    low: float = 0.0
    """Smallest allowed value (a heat map cell's: k)."""
    step: float = 0.0
    """Published resolution; 0 means a whole number (a count)."""
    total_growth: float | None = None
    """A lifetime total of the counter process: may never go down, nor grow by more than
    this from one interval record to the next."""
    density_of: tuple[str, float] | None = None
    """(occupancy quantity, area m²) this density must equal the quotient of."""


@dataclass(frozen=True, slots=True)
class Record:
    """A decoded, checked record: names from the schema, values already coarsened."""

    kind: Kind
    utc_ms: int
    values: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Schema:
    """The exact set of quantities one camera's counter may report, in a fixed order."""

    quantities: tuple[Quantity, ...]
    interval_s: float
    fingerprint: bytes = field(init=False)
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        described = "\n".join(f"{q.name} {q.kind.value} {q.high!r} {q.step!r} {q.total_growth}"
                              f"{f' {q.low!r}' if q.low else ''}" for q in self.quantities)
        digest = hashlib.sha256(f"{FORMAT_VERSION}\n{self.interval_s!r}\n{described}".encode())
        object.__setattr__(self, "fingerprint", digest.digest()[:8])
        object.__setattr__(self, "index", {q.name: i for i, q in enumerate(self.quantities)})

    @property
    def max_size(self) -> int:
        """Longest valid record in bytes: every quantity of the longest kind once."""
        pairs = max(sum(q.kind is kind for q in self.quantities) for kind in Kind)
        return HEADER.size + pairs * PAIR.size

    def names(self, kind: Kind) -> list[str]:
        return [q.name for q in self.quantities if q.kind is kind]

    def encode(self, kind: Kind, utc_ms: int, values: Iterable[tuple[str, float]]) -> bytes:
        """The counter's side. An unknown name is a bug in the counter: raise, do not send."""
        pairs = []
        for name, value in values:
            i = self.index.get(name)
            if i is None or self.quantities[i].kind is not kind:
                raise ValueError(f"{name!r} is not a {kind.name.lower()} quantity of this camera")
            pairs.append(PAIR.pack(i, float(value)))
        header = HEADER.pack(MAGIC, FORMAT_VERSION, kind, self.fingerprint, utc_ms, len(pairs))
        return header + b"".join(pairs)

    def decode(self, data: bytes) -> Record:
        """The daemon's side: parse and check one record, or raise :class:`RecordRejected`."""
        if len(data) < HEADER.size or (len(data) - HEADER.size) % PAIR.size:
            raise RecordRejected(f"a record of {len(data)} bytes is not header plus pairs")
        magic, version, kind_code, fingerprint, utc_ms, n = HEADER.unpack_from(data)
        if magic != MAGIC or version != FORMAT_VERSION:
            raise RecordRejected("not a counter record of format version "
                                 f"{FORMAT_VERSION}")
        if fingerprint != self.fingerprint:
            raise RecordRejected("the record was made for another camera configuration")
        if kind_code not in Kind._value2member_map_:
            raise RecordRejected("unknown record kind")
        kind = Kind(kind_code)
        if n != (len(data) - HEADER.size) // PAIR.size:
            raise RecordRejected("pair count does not match the record length")
        if utc_ms % 1000:
            raise RecordRejected("times must be whole seconds")
        values: dict[str, float] = {}
        for offset in range(HEADER.size, len(data), PAIR.size):
            i, raw = PAIR.unpack_from(data, offset)
            if i >= len(self.quantities):
                raise RecordRejected(f"quantity index {i} is not in this camera's schema")
            quantity = self.quantities[i]
            if quantity.kind is not kind:
                raise RecordRejected(f"{quantity.name} does not belong in a "
                                     f"{kind.name.lower()} record")
            if quantity.name in values:
                raise RecordRejected(f"{quantity.name} appears twice")
            values[quantity.name] = _checked(quantity, raw)
        self._check_together(kind, values)
        return Record(kind, utc_ms, tuple(values.items()))

    def _check_together(self, kind: Kind, values: dict[str, float]) -> None:
        """Rules across the values of one record; densities are recomputed in place."""
        if kind is Kind.INTERVAL and "frames" not in values:
            raise RecordRejected("an interval record must say how many frames it covers")
        if kind is Kind.SETUP:
            _check_setup(values)
            return
        if kind is not Kind.INTERVAL and len(values) != 1:
            raise RecordRejected(f"a {kind.name.lower()} record carries exactly one value")
        for name, mean in values.items():
            peak = values.get(name.removesuffix("_mean") + "_max")
            if name.endswith("occupancy_mean") and peak is not None and mean > peak:
                raise RecordRejected(f"{name} is above its maximum")
        for quantity in self.quantities:
            if quantity.density_of is not None and quantity.name in values:
                values[quantity.name] = _density(quantity, values)


def _checked(quantity: Quantity, raw: float) -> float:
    """The value coarsened to the quantity's resolution, or a rejection."""
    if not math.isfinite(raw) or not quantity.low <= raw <= quantity.high:
        raise RecordRejected(f"{quantity.name} is outside {quantity.low:g}..{quantity.high:g}")
    if quantity.step == 0:
        if raw != int(raw):
            raise RecordRejected(f"{quantity.name} must be a whole number")
        return raw
    return round(round(raw / quantity.step) * quantity.step, 6)


def _check_setup(values: dict[str, float]) -> None:
    """A set-up record states the frame; no cell holds more people than the window."""
    if "frame_width" not in values or "frame_height" not in values:
        raise RecordRejected("a setup record must state the frame's size")
    cells = [value for name, value in values.items() if name.startswith("heat_cell_")]
    if cells and max(cells) > values.get("heat_people", 0.0):
        raise RecordRejected("a heat map cell holds more people than the window")


def _density(quantity: Quantity, values: dict[str, float]) -> float:
    """The density recomputed from the (coarsened) occupancy, once the sent one agrees with it.

    Recomputing leaves the sent density no bits of its own to carry.
    """
    assert quantity.density_of is not None
    occupancy, area = quantity.density_of
    if occupancy not in values:
        raise RecordRejected(f"{quantity.name} without {occupancy}")
    expected = values[occupancy] / area
    if abs(values[quantity.name] - expected) > OCCUPANCY_STEP / area + quantity.step:
        raise RecordRejected(f"{quantity.name} is not {occupancy} / area")
    return _checked(quantity, expected)


def schema_for(config: CameraConfig) -> Schema:
    """Every quantity this camera's counter may report, derived from its configuration."""
    frames_high = math.ceil(config.fps_cap * config.interval_s * 1.5) + 10
    crossings_high = math.ceil(CROSSINGS_PER_S * config.interval_s)
    interval = Kind.INTERVAL
    q: list[Quantity] = [
        Quantity("frames", interval, frames_high),
        Quantity("frames_inferred", interval, frames_high),
        Quantity("fps", interval, config.fps_cap * 1.5 + 1, step=0.01),
        Quantity("fps_target", interval, config.fps_cap, step=0.01),
        Quantity("inference_ms_p50", interval, 60_000, step=0.1),
        Quantity("inference_ms_p95", interval, 60_000, step=0.1),
        Quantity("frames_dropped_total", interval, MAX_TOTAL,
                 total_growth=math.ceil(CAMERA_FPS_MAX * config.interval_s)),
        Quantity("source_reconnects_total", interval, MAX_TOTAL,
                 total_growth=math.ceil(config.interval_s / config.reconnect_min_s) + 2),
    ]
    for line in config.lines:
        q += [Quantity(f"line_{line.name}_in", interval, crossings_high),
              Quantity(f"line_{line.name}_out", interval, crossings_high)]
    areas: list[tuple[str, float | None]] = [(f"zone_{z.name}_", z.area_m2)
                                             for z in config.zones]
    for prefix, area in [*areas, ("", None)]:
        q += [Quantity(f"{prefix}occupancy_mean", interval, MAX_PERSONS,
                       step=OCCUPANCY_STEP),
              Quantity(f"{prefix}occupancy_max", interval, MAX_PERSONS)]
        if area is not None:
            q += [Quantity(f"{prefix}density_{stat}", interval, MAX_PERSONS / area, step=0.001,
                           density_of=(f"{prefix}occupancy_{stat}", area))
                  for stat in ("mean", "max")]
    q += [Quantity(f"zone_{z.name}_density_alert", Kind.ALERT, 1)
          for z in config.zones if z.density_on is not None]
    q.append(Quantity("source_up", Kind.STATUS, 1))
    return Schema(tuple(q + _setup_quantities(config)), config.interval_s)


def _setup_quantities(config: CameraConfig) -> list[Quantity]:
    """What set-up mode may say: frame size, crossings since it began, k-anonymous cells."""
    setup, k = Kind.SETUP, config.setup.min_people
    crossings_high = math.ceil(CROSSINGS_PER_S * config.setup.max_minutes * 60)
    q = [Quantity("frame_width", setup, FRAME_SIDE_MAX, low=1),
         Quantity("frame_height", setup, FRAME_SIDE_MAX, low=1),
         Quantity("heat_people", setup, PEOPLE_MAX, low=k)]
    for line in config.lines:
        q += [Quantity(f"setup_line_{line.name}_in", setup, crossings_high),
              Quantity(f"setup_line_{line.name}_out", setup, crossings_high)]
    return q + [Quantity(f"heat_cell_{i}", setup, PEOPLE_MAX, low=k) for i in range(CELLS)]


class Gate:
    """Per-process rules over a sequence of records: rate, order, grid, alternation.

    One gate per counter process life; the daemon makes a new one at every
    (re)start. ``now_s`` is the daemon's monotonic clock and ``wall_ms`` its
    wall clock, both read on arrival.
    """

    SLACK_INTERVALS = 3
    """Interval records beyond one per interval: a catch-up after a stall, the last partial."""
    STEP_MS = 500
    """A move of the wall clock against the monotonic one beyond drift: a step."""

    def __init__(self, schema: Schema, started_s: float, *,
                 now_s: Callable[[], float], wall_ms: Callable[[], int]) -> None:
        self._schema = schema
        self._started = started_s
        self._now_s = now_s
        self._wall_ms = wall_ms
        self._intervals = 0
        self._off_grid = 0
        self._last_end = -1
        self._last_state: dict[str, float] = {}
        self._last_switch_ms: dict[str, int] = {}
        self._totals: dict[str, float] = {}
        self._events = 0
        self._setups = 0
        self._offset_ms = self._wall_ms() - round(self._now_s() * 1000)
        self._steps = 0
        """Wall-clock steps seen: each lets the counter cut one interval short."""

    def admit(self, record: Record) -> Record:
        """Return the record when it keeps every rule, else raise :class:`RecordRejected`."""
        elapsed = max(0.0, self._now_s() - self._started)
        self._follow_wall_clock()
        if record.utc_ms > self._wall_ms() + 5000:
            raise RecordRejected("a record from the future")
        if record.kind is Kind.INTERVAL:
            self._admit_interval(record, elapsed)
        elif record.kind is Kind.SETUP:
            self._setups += 1
            if self._setups > elapsed + 2:
                raise RecordRejected("more setup records than one per second")
        else:
            self._admit_switch(record, elapsed)
        return record

    def _follow_wall_clock(self) -> None:
        """Allow for a step of the wall clock, seen on the daemon's own clocks.

        The counter cuts its interval in progress at a step (``agent.vision.grid``):
        one more record, off the grid. After a step back its stamps also lie
        before the last ones, so the last end and switch times the rules compare
        with move back by the step, in whole seconds and one more for the
        rounding of the stamps: "ends increase" and "one switch a second" keep
        holding in real time. The counter cannot make the daemon's clock step,
        so this gives it no way to send more at will. The threshold lies well
        under the counter's (a quarter interval, at most 1 s), so a step the
        counter cuts at is always one this gate saw.
        """
        offset = self._wall_ms() - round(self._now_s() * 1000)
        moved = offset - self._offset_ms
        self._offset_ms = offset
        if abs(moved) <= min(self.STEP_MS, round(self._schema.interval_s * 1000) // 8):
            return
        self._steps += 1
        if moved < 0:
            shift = 1000 * (math.ceil(-moved / 1000) + 1)
            self._last_end -= shift
            self._last_switch_ms = {k: v - shift for k, v in self._last_switch_ms.items()}

    def _admit_interval(self, record: Record, elapsed: float) -> None:
        self._intervals += 1
        if self._intervals > (elapsed / self._schema.interval_s + self.SLACK_INTERVALS
                              + self._steps):
            raise RecordRejected("more interval records than intervals have passed")
        if record.utc_ms <= self._last_end:
            raise RecordRejected("interval ends must increase")
        self._last_end = record.utc_ms
        if record.utc_ms % round(self._schema.interval_s * 1000):
            self._off_grid += 1
            if self._off_grid > 1 + self._steps:
                raise RecordRejected("only one partial interval per counter process and "
                                     "wall-clock step")
        for name, value in record.values:
            growth = self._schema.quantities[self._schema.index[name]].total_growth
            if growth is not None:
                before = self._totals.get(name, 0.0)
                if value < before:
                    raise RecordRejected(f"{name} went down")
                if value - before > growth:
                    raise RecordRejected(f"{name} grew faster than it can")
                self._totals[name] = value

    def _admit_switch(self, record: Record, elapsed: float) -> None:
        self._events += 1
        switches = len(self._schema.names(Kind.ALERT)) + 1
        if self._events > switches * (elapsed + 2):
            raise RecordRejected("more alert and status records than one per second each")
        (name, value), = record.values
        if self._last_state.get(name, 0.0 if record.kind is Kind.ALERT else None) == value:
            raise RecordRejected(f"{name} repeated its state instead of switching")
        if record.utc_ms < self._last_switch_ms.get(name, -1) + 1000:
            raise RecordRejected(f"{name} switched twice within a second")
        self._last_state[name] = value
        self._last_switch_ms[name] = record.utc_ms
