"""Sensor.Community's push API, as pure functions: which rows become which push, and
what the server's answer means.

The contract, from the two programs that define it:

* The airrohr firmware (opendata-stuttgart/sensors-software, airrohr-firmware.ino,
  ``sendSensorCommunity``) POSTs one JSON document per sensor and send interval to
  ``/v1/push-sensor-data/`` with headers ``X-Sensor`` (the node) and ``X-Pin`` (the
  sensor on it): ``{"software_version": ..., "sensordatavalues": [{"value_type":
  "P1", "value": "12.34"}, ...]}``, values as strings, value types without the
  firmware's sensor prefix (``SDS_P1`` → ``P1``), pressure in Pa.
* feinstaub-api (opendata-stuttgart/feinstaub-api, sensors/serializers.py,
  authentication.py, models.py), the server: ``X-Sensor`` names the node (unknown
  or missing: 403); ``X-Pin`` picks the node's sensor (none fits: 400); an empty
  list or an unknown value type is a 400; ``timestamp`` is optional (default: the
  time of arrival); each value type may occur once per push (a second one breaks a
  unique constraint: 500).

So a push here carries one window of one sensor: the values of one (sensor, time)
that have a Sensor.Community name, each value type once (a repeated type starts a
second push), stamped with the window's own time so a backlog lands where it was
measured. Windows flagged warming-up are not pushed; neither is anything without a
Sensor.Community name (health values, counts, corrected PM): the sink skips those.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.config.sinks import Channels
from agent.models import OutboxRecord, Quality
from agent.publish.delivery import Verdict, Work, verdict

__all__ = ["Push", "Verdict", "body", "headers", "plan", "timestamp", "verdict"]

PA_PER_UNIT = {"Pa": 1.0, "hPa": 100.0, "kPa": 1000.0}
"""Sensor.Community's ``pressure`` is in Pa (airrohr sends Pa); profiles say hPa."""


@dataclass(frozen=True)
class Push:
    """One POST: a window of one sensor, and the outbox rows it delivers."""

    pin: int
    utc_ms: int
    values: tuple[tuple[str, str], ...]
    """(value_type, value as a string), each value_type once."""
    row_ids: tuple[int, ...]

    @property
    def label(self) -> str:
        return f"pin {self.pin} at {timestamp(self.utc_ms)}"


def timestamp(utc_ms: int) -> str:
    """ISO 8601 UTC with milliseconds, as Django REST framework's DateTimeField parses it."""
    moment = datetime.fromtimestamp(utc_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc_ms % 1000:03d}Z"


def plan(records: Sequence[OutboxRecord], channels: Channels, *, full: bool) -> Work[Push]:
    """Pushes for ``records`` (oldest first) and the rows to skip.

    ``full``: the claim was cut at its limit, so the last window may continue in the
    next batch; it is left for then (unless it is all there is), so one window is
    never split across two pushes by a batch boundary.
    """
    if not records:
        return Work([], [], 0)
    end = len(records)
    if full:
        last = _window(records[-1])
        while end > 0 and _window(records[end - 1]) == last:
            end -= 1
        end = end or len(records)
    pushes: list[Push] = []
    skip: list[int] = []
    current: dict[str, str] = {}
    rows: list[int] = []
    key: tuple[str, int, int] | None = None
    for record in records[:end]:
        m = record.measurement
        pin, value_type = channels.get((m.sensor_id, m.quantity), (0, ""))
        value = None if not value_type or Quality.WARMING_UP in m.flags \
            else _value(record, value_type)
        if value is None:
            skip.append(record.row_id)
            continue
        if key != (m.sensor_id, m.utc_ms, pin) or value_type in current:
            if current and key is not None:
                pushes.append(Push(key[2], key[1], tuple(current.items()), tuple(rows)))
            key, current, rows = (m.sensor_id, m.utc_ms, pin), {}, []
        current[value_type] = value
        rows.append(record.row_id)
    if current and key is not None:
        pushes.append(Push(key[2], key[1], tuple(current.items()), tuple(rows)))
    return Work(pushes, skip, records[end - 1].row_id)


def body(push: Push, software_version: str) -> bytes:
    """The JSON document of one push."""
    return json.dumps({
        "software_version": software_version,
        "timestamp": timestamp(push.utc_ms),
        "sensordatavalues": [{"value_type": value_type, "value": value}
                             for value_type, value in push.values],
    }, separators=(",", ":")).encode()


def headers(node_id: str, push: Push, user_agent: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Sensor": node_id,
            "X-Pin": str(push.pin), "User-Agent": user_agent}


def _window(record: OutboxRecord) -> tuple[str, int]:
    return record.measurement.sensor_id, record.measurement.utc_ms


def _value(record: OutboxRecord, value_type: str) -> str | None:
    """The value as Sensor.Community wants it: a string, pressure in Pa, two decimals
    as airrohr's ``String(float)`` gives. None when it cannot be said (unknown unit)."""
    m = record.measurement
    value = m.value
    if value_type == "pressure":
        if m.unit not in PA_PER_UNIT:
            return None
        value *= PA_PER_UNIT[m.unit]
    return f"{value:.2f}" if math.isfinite(value) else None
