"""InfluxDB writes, as pure functions: which rows become which points, the write's URL
and headers, and what InfluxDB's answer means.

A point is one window of one sensor (or one interval of one camera):

* measurement: ``[sinks.influxdb] measurement`` (default the sensor's model, e.g.
  ``sds011``; health values go to ``health``);
* tags: ``device`` (device_id), ``sensor`` (sensor or camera id), ``model``, and the
  configured extra tags;
* fields: each quantity's value (its mean for an aggregate), ``<q>_min``, ``<q>_max``,
  ``<q>_n`` (integer) for aggregates, ``window_s`` once, and ``<q>_flags``: the quality
  flags, comma-separated and sorted, ``""`` when there are none. A string field that is
  always there lets InfluxQL select clean windows (``WHERE pm2_5_flags = ''``); a
  missing field would be unselectable, and a tag would split one window into series;
* time: the window's end (the ``time_ms`` the MQTT stream carries), so a point sits
  where its value became known and ``window_s`` says how far back it reaches.

Rows of one (sensor, time) in a row make one point; a repeated quantity starts a new
point (InfluxDB merges points of the same series and time, so nothing is lost).

What the answer means (InfluxDB 1.x ``httpd/handler.go``, 2.x API): 204 stored; a 400
whose reason is about lines (``partial write``, ``unable to parse``, ``field type
conflict``, ``beyond retention policy``) or a 413 is this batch: the points InfluxDB
could take are stored, so the batch is sent again in halves down to the line it never
takes, which is set aside; any other 400 or 422 is about the request (this box's
settings): kept, a person must look. 401/403 (credentials) and 404 (no such database
or bucket) are refusals; 5xx, 408, 429 and no answer are retried.
"""

from __future__ import annotations

import base64
import math
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.config.influxdb import InfluxDBConfig
from agent.config.sensors import ResolvedSensor
from agent.health.heartbeat import is_health
from agent.models import Measurement, OutboxRecord
from agent.publish.delivery import Answer, Verdict, Work, verdict
from agent.publish.line_protocol import FieldValue, line

HEALTH_MEASUREMENT = "health"
CAMERA_MODEL = "camera"
AGENT_MODEL = "agent"
LINE_REASONS = ("partial write", "unable to parse", "field type conflict",
                "beyond retention policy")
PRECISION_DIVISOR = {"s": 1000, "ms": 1}
PRECISION_FACTOR = {"us": 1000, "ns": 1_000_000}
V1_PRECISION = {"s": "s", "ms": "ms", "us": "u", "ns": "n"}


@dataclass(frozen=True)
class Source:
    """A sensor or camera as InfluxDB sees it."""

    model: str


@dataclass(frozen=True)
class Layout:
    """What decides a point's measurement, tags and time: the settings, the box, its
    sensors and cameras."""

    config: InfluxDBConfig
    device_id: str
    sources: dict[str, Source]


@dataclass(frozen=True)
class Point:
    """One line and the outbox rows it carries."""

    text: str
    row_ids: tuple[int, ...]
    utc_ms: int


@dataclass(frozen=True)
class Batch:
    """One write: points in outbox order."""

    points: tuple[Point, ...]

    @property
    def row_ids(self) -> tuple[int, ...]:
        return tuple([i for p in self.points for i in p.row_ids])  # exact size: see payload.py

    @property
    def label(self) -> str:
        first, last = _iso(self.points[0].utc_ms), _iso(self.points[-1].utc_ms)
        span = first if first == last else f"{first} to {last}"
        return f"{len(self.points)} point(s) at {span}"

    def body(self) -> bytes:
        return "\n".join(p.text for p in self.points).encode()

    def halves(self) -> list[Batch]:
        if len(self.points) < 2:
            return []
        middle = len(self.points) // 2
        return [Batch(self.points[:middle]), Batch(self.points[middle:])]


def sources(sensors: Iterable[ResolvedSensor],
            cameras: Iterable[str]) -> dict[str, Source]:
    """Every enabled sensor and camera, and its model."""
    found = {s.sensor_id: Source(s.config.model) for s in sensors}
    return found | {camera: Source(CAMERA_MODEL) for camera in cameras}


def plan(records: Sequence[OutboxRecord], layout: Layout) -> Work[Batch]:
    """Writes of at most ``batch_lines`` points for ``records`` (oldest first); rows not
    written (health, unless asked for; sensors not chosen; no finite value) are skipped."""
    if not records:
        return Work([], [], 0)
    skip: list[int] = []
    points: list[Point] = []
    group: list[OutboxRecord] = []
    key: tuple[str, int, str] | None = None
    for record in records:
        m = record.measurement
        measurement = _measurement(m, layout)
        if measurement is None or not math.isfinite(m.value):
            skip.append(record.row_id)
            continue
        if group and ((m.sensor_id, m.utc_ms, measurement) != key
                      or m.quantity in {r.measurement.quantity for r in group}):
            _add(points, skip, group, layout)
            group = []
        key = (m.sensor_id, m.utc_ms, measurement)
        group.append(record)
    if group:
        _add(points, skip, group, layout)
    size = layout.config.batch_lines
    batches = [Batch(tuple(points[i:i + size])) for i in range(0, len(points), size)]
    return Work(batches, skip, records[-1].row_id)


def write_url(config: InfluxDBConfig) -> str:
    base = str(config.url).rstrip("/")
    if config.api == "v1":
        query = {"db": config.database, "rp": config.retention_policy,
                 "precision": V1_PRECISION[config.precision]}
        path = "/write"
    else:
        query = {"org": config.org, "bucket": config.bucket, "precision": config.precision}
        path = "/api/v2/write"
    return base + path + "?" + urllib.parse.urlencode(
        {k: v for k, v in query.items() if v is not None})


def headers(config: InfluxDBConfig, secret: str | None, user_agent: str) -> dict[str, str]:
    found = {"Content-Type": "text/plain; charset=utf-8", "User-Agent": user_agent}
    if config.api == "v2" and secret is not None:
        found["Authorization"] = f"Token {secret}"
    elif config.username is not None and secret is not None:
        pair = base64.b64encode(f"{config.username}:{secret}".encode()).decode()
        found["Authorization"] = f"Basic {pair}"
    return found


def influx_verdict(answer: Answer) -> Verdict:
    """What InfluxDB means: a 400/422 about lines is this batch, any other about us."""
    meaning = verdict(answer.status or 0)
    if meaning is Verdict.REJECTED and answer.status != 413 and \
            not any(reason in answer.reason for reason in LINE_REASONS):
        return Verdict.REFUSED
    return meaning


def timestamp(utc_ms: int, precision: str) -> int:
    if precision in PRECISION_DIVISOR:
        return utc_ms // PRECISION_DIVISOR[precision]
    return utc_ms * PRECISION_FACTOR[precision]


def _measurement(m: Measurement, layout: Layout) -> str | None:
    """The measurement a row goes to; None when it is not written."""
    config = layout.config
    source = layout.sources.get(m.sensor_id)
    if source is not None and not is_health(m.sensor_id, m.quantity):
        if config.sensors is not None and m.sensor_id not in config.sensors:
            return None
        return config.measurement.format(model=source.model, sensor=m.sensor_id,
                                         device=layout.device_id)
    return HEALTH_MEASUREMENT if config.health else None


def _add(points: list[Point], skip: list[int], group: list[OutboxRecord],
         layout: Layout) -> None:
    """The group's point, or its rows skipped when line protocol cannot say it (a name
    with a line break: config validation keeps those out, this keeps the sink going)."""
    try:
        points.append(_point(group, layout))
    except ValueError:
        skip.extend(r.row_id for r in group)


def _point(group: list[OutboxRecord], layout: Layout) -> Point:
    first = group[0].measurement
    source = layout.sources.get(first.sensor_id)
    measurement = _measurement(first, layout) or HEALTH_MEASUREMENT
    model = source.model if source is not None else AGENT_MODEL
    tags = {**layout.config.tags, "device": layout.device_id, "sensor": first.sensor_id,
            "model": model}
    fields: list[tuple[str, FieldValue]] = []
    window: float | None = None
    for record in group:
        m = record.measurement
        fields.append((m.quantity, float(m.value)))
        if m.stats is not None:
            fields += [(f"{m.quantity}_min", float(m.stats.minimum)),
                       (f"{m.quantity}_max", float(m.stats.maximum)),
                       (f"{m.quantity}_n", int(m.stats.count))]
        window = m.span_s if m.span_s is not None else window
        fields.append((f"{m.quantity}_flags", ",".join(sorted(m.flags))))
    if window is not None:
        fields.append(("window_s", float(window)))
    finite = [(k, v) for k, v in fields if not isinstance(v, float) or math.isfinite(v)]
    text = line(measurement, tags.items(), finite, timestamp(first.utc_ms, layout.config.precision))
    return Point(text, tuple([r.row_id for r in group]), first.utc_ms)


def _iso(utc_ms: int) -> str:
    return datetime.fromtimestamp(utc_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
