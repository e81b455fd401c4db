"""Payload builders: batching rules and the documented JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from agent.models import Measurement, OutboxRecord, Quality, Stats
from agent.publish.payload import (
    build_messages,
    health_topic,
    measurements_topic,
    status_topic,
)
from tests.garbage import blocks_kept

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "payload.schema.json")
                    .read_text())


def record(row: int, boot: str, seq: int, **kw: object) -> OutboxRecord:
    m = Measurement("pm", "pm2_5", 12.300000000000001, "ug/m3", 1_800_000_000_000, 5.0, **kw)
    return OutboxRecord(row, boot, seq, m)


def test_topics() -> None:
    assert status_topic("lokaalmeten", "nl-1") == "lokaalmeten/nl-1/status"
    assert measurements_topic("a/b", "nl-1") == "a/b/nl-1/measurements"
    assert health_topic("a/b", "nl-1") == "a/b/nl-1/health"


def test_health_and_measured_values_apart_only_when_asked() -> None:
    """In outbox order: a window, the heartbeat, a sensor's counters, a window."""
    boot = "a" * 32
    rows = [("pm", "pm2_5"), ("agent", "uptime"), ("agent", "outbox_depth"),
            ("pm", "errors_total"), ("pm", "pm10"), ("street", "restarts_total"),
            ("street", "line_door_in")]
    records = [OutboxRecord(i, boot, i, Measurement(sensor, quantity, 1.0, "1", 0, 0.0))
               for i, (sensor, quantity) in enumerate(rows, start=1)]
    apart = build_messages("nl-1", records, max_batch=10, sent_ms=1, apart=True)
    assert [(m.row_ids, m.health) for m in apart] == [
        ((1,), False), ((2, 3, 4), True), ((5,), False), ((6,), True), ((7,), False)]
    together = build_messages("nl-1", records, max_batch=10, sent_ms=1)
    assert [(m.row_ids, m.health) for m in together] == [((1, 2, 3, 4, 5, 6, 7), False)]


def test_messages_split_at_boot_change_and_batch_size() -> None:
    a, b = "a" * 32, "b" * 32
    records = [record(i, a, i) for i in range(1, 6)] + [record(6, b, 1), record(7, b, 2)]
    messages = build_messages("nl-1", records, max_batch=3, sent_ms=1)
    assert [(m.boot_id[0], m.first_seq, m.last_seq) for m in messages] == [
        ("a", 1, 3), ("a", 4, 5), ("b", 1, 2)]
    assert [m.row_ids for m in messages] == [(1, 2, 3), (4, 5), (6, 7)]


def test_building_messages_keeps_no_memory() -> None:
    """Every message is built and dropped again: thousands of them may leave nothing."""
    records = [record(i, "a" * 32, i) for i in range(1, 13)]
    kept = blocks_kept(lambda: build_messages("nl-1", records, max_batch=50, sent_ms=1), 3000)
    assert kept < 300, f"{kept} Python blocks kept after 3000 messages"


def test_payload_matches_schema_and_trims_float_noise() -> None:
    boot = "c" * 32
    records = [
        record(1, boot, 1),
        record(2, boot, 2, flags=frozenset({Quality.WARMING_UP, Quality.RETRIED}),
               stats=Stats(11.0, 13.5, 60, 60.0), meta=(("calibration_scale", 0.9),)),
    ]
    (message,) = build_messages("nl-1", records, max_batch=10, sent_ms=1_800_000_000_500)
    body = json.loads(message.payload)
    jsonschema.validate(body, SCHEMA)
    first, second = body["measurements"]
    assert first == {"seq": 1, "sensor": "pm", "quantity": "pm2_5", "value": 12.3,
                     "unit": "ug/m3", "time_ms": 1_800_000_000_000}
    assert second["flags"] == ["retried", "warming_up"]
    assert (second["min"], second["max"], second["n"], second["window_s"]) == (11, 13.5, 60, 60)
    assert second["meta"] == {"calibration_scale": 0.9}


def test_non_finite_values_are_refused() -> None:
    bad = OutboxRecord(1, "d" * 32, 1, Measurement("x", "y", float("nan"), "1", 0, 0.0))
    with pytest.raises(ValueError):
        build_messages("nl-1", [bad], max_batch=1, sent_ms=0)
