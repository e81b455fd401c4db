"""Topics and JSON payloads (pure functions; the format is documented in docs/payload.md).

One message carries measurements of one boot, in ``seq`` order. Live traffic
sends each finished window as it comes; a backlog after an outage goes out in
batches of up to ``max_batch`` measurements so it drains quickly without one
message per value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from agent.health.heartbeat import is_health
from agent.models import Measurement, OutboxRecord

PAYLOAD_VERSION = 1
SIGNIFICANT_DIGITS = 7


def status_topic(prefix: str, device_id: str) -> str:
    """Retained ``online``/``offline``; the broker publishes ``offline`` as our Last Will."""
    return f"{prefix}/{device_id}/status"


def measurements_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/{device_id}/measurements"


def health_topic(prefix: str, device_id: str) -> str:
    """The box's health (``agent.health.heartbeat.is_health``), when kept apart."""
    return f"{prefix}/{device_id}/health"


@dataclass(frozen=True, slots=True)
class Message:
    """A payload ready to publish and the outbox rows it carries."""

    payload: bytes
    row_ids: tuple[int, ...]
    boot_id: str
    first_seq: int
    last_seq: int
    health: bool = False
    """Health values only (for the health topic); else measured values only, or both
    when the caller does not keep them apart."""


def measurement_object(seq: int, m: Measurement) -> dict[str, object]:
    """The JSON object of one measurement (keys per docs/payload.schema.json)."""
    obj: dict[str, object] = {
        "seq": seq,
        "sensor": m.sensor_id,
        "quantity": m.quantity,
        "value": _number(m.value),
        "unit": m.unit,
        "time_ms": m.utc_ms,
    }
    if m.flags:
        obj["flags"] = sorted(m.flags)
    if m.stats is not None:
        obj["min"] = _number(m.stats.minimum)
        obj["max"] = _number(m.stats.maximum)
        obj["n"] = m.stats.count
    if m.span_s is not None:
        obj["window_s"] = m.span_s
    if m.meta:
        obj["meta"] = dict(m.meta)
    return obj


def build_messages(device_id: str, records: list[OutboxRecord], max_batch: int,
                   sent_ms: int, max_bytes: int | None = None, *,
                   apart: bool = False) -> list[Message]:
    """Split records (oldest first) into messages: one boot each, ``max_batch`` at most,
    no payload over ``max_bytes`` unless it holds a single measurement, and with
    ``apart`` health and measured values never in the same message."""
    messages: list[Message] = []
    kinds = [apart and is_health(r.measurement.sensor_id, r.measurement.quantity)
             for r in records]
    start = 0
    while start < len(records):
        boot, kind = records[start].boot_id, kinds[start]
        end = start
        while end < len(records) and end - start < max_batch and \
                records[end].boot_id == boot and kinds[end] == kind:
            end += 1
        payload = _payload(device_id, records[start:end], sent_ms)
        while max_bytes is not None and len(payload) > max_bytes and end - start > 1:
            end = start + (end - start) // 2  # halve until it fits the broker's limit
            payload = _payload(device_id, records[start:end], sent_ms)
        chunk = records[start:end]
        # From a list, not a generator: a tuple built from a generator is resized from a
        # guessed size and freed into its final size's free list, which then grew by one
        # per message for hours (tests/garbage.py).
        row_ids = tuple([r.row_id for r in chunk])
        messages.append(Message(payload, row_ids, boot, chunk[0].seq, chunk[-1].seq, kind))
        start = end
    return messages


def _payload(device_id: str, chunk: list[OutboxRecord], sent_ms: int) -> bytes:
    body = {
        "v": PAYLOAD_VERSION,
        "device_id": device_id,
        "boot_id": chunk[0].boot_id,
        "sent_ms": sent_ms,
        "measurements": [measurement_object(r.seq, r.measurement) for r in chunk],
    }
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def _number(value: float) -> float | int:
    """Trim float noise from means (12.300000000000001 → 12.3) without losing resolution."""
    trimmed = float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    return int(trimmed) if trimmed.is_integer() and abs(trimmed) < 2**53 else trimmed
