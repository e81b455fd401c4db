"""The status report: the JSON of ``/api/status``, and what on the box is wrong.

The page and ``lokaalmeten status`` read this one document, so they never disagree;
``problems`` decides what counts as wrong (an ``error`` makes the command exit 1),
in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.models import Measurement
from agent.status.facts import BoxFacts, SensorFacts
from agent.status.units import display_unit, label
from agent.storage.ledger import MQTT_SINK

REPORT_VERSION = 1
START_GRACE_S = 60.0
SINK_STALE_S = 900.0
"""A sink with a backlog, failing, and nothing confirmed for this long is worth a look."""
"""Within this long after the start, a sensor or camera not up yet is only a warning."""
THROTTLED_NOW = 0xF
"""Raspberry Pi firmware bits for a condition now (under-voltage, capped, throttled, soft
temperature limit); the higher bits say it happened since boot."""

Json = dict[str, object]


@dataclass(frozen=True)
class Problem:
    severity: str
    """``error`` (something is broken) or ``warning`` (worth a look)."""
    subject: str
    text: str

    def as_json(self) -> Json:
        return {"severity": self.severity, "subject": self.subject, "text": self.text}


@dataclass(frozen=True)
class Trend:
    """What the tracker knows beyond the moment."""

    broker_down_s: float | None
    dropped_last_hour: int


def problems(facts: BoxFacts, trend: Trend, broker_down_after_s: float) -> list[Problem]:
    """Everything that is wrong or doubtful, errors first."""
    starting = facts.uptime_s < START_GRACE_S
    found: list[Problem] = []

    def add(error: bool, subject: str, text: str) -> None:
        found.append(Problem("error" if error else "warning", subject, text))

    for sensor in facts.sensors:
        if sensor.stalled:
            add(True, sensor.sensor_id, "stuck in a read (its thread has not come round)")
        elif sensor.state == "starting":
            add(not starting, sensor.sensor_id, "not read yet")
        elif not sensor.up:
            add(True, sensor.sensor_id, f"down: {sensor.last_error or sensor.state}")
    for camera in facts.cameras:
        if not camera.up:
            add(not starting, camera.camera_id, "counter process not running")
        elif not camera.source_up:
            add(not starting, camera.camera_id, "no frames from the camera")
    if trend.broker_down_s is not None:
        minutes = trend.broker_down_s / 60
        add(trend.broker_down_s > broker_down_after_s, "broker",
            f"not connected for {minutes:.0f} min"
            + (f" ({facts.broker.last_error})" if facts.broker.last_error else ""))
    found += _sink_problems(facts, starting)
    if trend.dropped_last_hour:
        add(True, "outbox", f"{trend.dropped_last_hour} measurements dropped in the last "
            "hour (outbox full, too old, or disk full)")
    free = facts.system.disk_free_mb
    if free is not None and free < facts.min_free_mb:
        add(True, "disk", f"{free:.0f} MB free, below storage.min_free_mb "
            f"({facts.min_free_mb:g} MB): the outbox drops old data")
    throttled = facts.system.throttled
    if throttled is not None and throttled & THROTTLED_NOW:
        add(False, "power", f"throttled now (0x{throttled:x}): check the power supply "
            "and cooling")
    if facts.system.clock_synchronized is False:
        add(False, "clock", "not NTP-synchronised: time stamps may be off")
    return sorted(found, key=lambda p: p.severity != "error")


def _sink_problems(facts: BoxFacts, starting: bool) -> list[Problem]:
    """Sinks besides MQTT (the broker's own problem covers that one)."""
    found = []
    for sink in facts.sinks:
        if sink.name == MQTT_SINK:
            continue
        if sink.refused:
            found.append(Problem("error", sink.name, f"refuses this box: {sink.last_error}"))
        elif sink.backlog and sink.errors_total and (
                sink.last_success_age_s is None or sink.last_success_age_s > SINK_STALE_S):
            found.append(Problem("warning" if starting else "error", sink.name,
                                 f"{sink.backlog} measurements waiting"
                                 + (f" ({sink.last_error})" if sink.last_error else "")))
    return found


def value_json(m: Measurement) -> Json:
    """One latest value as the page shows it: both units, flags, the window's extremes."""
    item: Json = {"quantity": m.quantity, "label": label(m.quantity), "value": m.value,
                  "unit": m.unit, "display_unit": display_unit(m.unit, m.quantity),
                  "time_ms": m.utc_ms, "flags": sorted(f.value for f in m.flags)}
    if m.stats is not None:
        item.update(min=m.stats.minimum, max=m.stats.maximum, n=m.stats.count,
                    window_s=m.stats.window_s)
    return item


def _sensor_json(sensor: SensorFacts, values: Sequence[Measurement], now_ms: int) -> Json:
    seen = sensor.last_success_utc_ms
    return {"id": sensor.sensor_id, "model": sensor.model, "name": sensor.name,
            "state": sensor.state, "up": sensor.up, "stalled": sensor.stalled,
            "last_seen_ms": seen,
            "last_seen_age_s": None if seen is None else max(0.0, (now_ms - seen) / 1000),
            "consecutive_failures": sensor.consecutive_failures,
            "errors_total": sensor.errors_total,
            "frames_rejected_total": sensor.frames_rejected,
            "not_ready_total": sensor.not_ready_total, "last_error": sensor.last_error,
            "values": [value_json(m) for m in values]}


def build(facts: BoxFacts, trend: Trend, found: Sequence[Problem],
          latest: dict[str, list[Measurement]], history_bytes: int | None) -> Json:
    """The whole ``/api/status`` document (docs/operations.md describes every field)."""
    system = facts.system
    cameras = []
    for camera in facts.cameras:
        values = latest.get(camera.camera_id, [])
        seen = max((m.utc_ms for m in values), default=None)
        cameras.append({"id": camera.camera_id, "up": camera.up,
                        "source_up": camera.source_up,
                        "restarts_total": camera.restarts_total,
                        "records_rejected_total": camera.records_rejected_total,
                        "last_seen_ms": seen, "values": [value_json(m) for m in values]})
    return {
        "v": REPORT_VERSION, "device_id": facts.device_id, "version": facts.version,
        "boot_id": facts.boot_id, "now_ms": facts.now_ms, "uptime_s": facts.uptime_s,
        "ok": not any(p.severity == "error" for p in found),
        "problems": [p.as_json() for p in found],
        "broker": {"host": facts.broker.host, "port": facts.broker.port,
                   "connected": facts.broker.connected, "down_s": trend.broker_down_s,
                   "connects_total": facts.broker.connects,
                   "messages_sent_total": facts.broker.messages_sent,
                   "measurements_sent_total": facts.broker.measurements_acked,
                   "last_error": facts.broker.last_error},
        "outbox": {"depth": facts.outbox_depth, "dropped_total": facts.outbox_dropped_total,
                   "dropped_last_hour": trend.dropped_last_hour,
                   "quarantined_total": facts.outbox_quarantined_total},
        "system": {"cpu_temperature_c": system.cpu_temperature_c,
                   "disk_free_mb": system.disk_free_mb, "load_1m": system.load_1m,
                   "rss_mb": system.rss_mb, "throttled": system.throttled,
                   "clock_synced": system.clock_synchronized,
                   "history_mb": None if history_bytes is None else history_bytes / 1e6},
        "sensors": [_sensor_json(s, latest.get(s.sensor_id, []), facts.now_ms)
                    for s in facts.sensors],
        "cameras": cameras,
        "sinks": [{"name": s.name, "backlog": s.backlog,
                   "last_success_age_s": s.last_success_age_s, "errors_total": s.errors_total,
                   "dropped_total": s.dropped_total, "rejected_total": s.rejected_total,
                   "refused": s.refused, "last_error": s.last_error} for s in facts.sinks],
    }
