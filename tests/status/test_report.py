"""What counts as wrong on a box, and the JSON the page and the command read."""

from __future__ import annotations

import json
import tracemalloc
from dataclasses import fields, replace

import pytest

from agent.models import Measurement, Quality, Stats
from agent.status.facts import BoxFacts, CameraFacts, Tracker
from agent.status.report import Trend, build, problems
from tests.garbage import blocks_kept
from tests.status.boxes import NOW_MS, SYSTEM, broker, healthy, sensor

CALM = Trend(None, 0)


def subjects(found: list, severity: str) -> list[str]:
    return [p.subject for p in found if p.severity == severity]


def test_a_healthy_box_has_no_problems() -> None:
    assert problems(healthy(), CALM, 600) == []


@pytest.mark.parametrize("broken", [
    {"state": "failing", "up": False, "last_error": "no reply from /dev/ttyUSB0"},
    {"stalled": True, "up": False},
])
def test_a_sensor_down_is_an_error(broken: dict) -> None:
    found = problems(healthy(sensors=(sensor(**broken),)), CALM, 600)
    assert subjects(found, "error") == ["pm"]
    if "last_error" in broken:
        assert "no reply from /dev/ttyUSB0" in found[0].text


def test_not_up_yet_is_a_warning_only_just_after_the_start() -> None:
    starting = sensor(state="starting", up=False, last_success_utc_ms=None)
    assert subjects(problems(healthy(uptime_s=10, sensors=(starting,)), CALM, 600),
                    "warning") == ["pm"]
    assert subjects(problems(healthy(uptime_s=600, sensors=(starting,)), CALM, 600),
                    "error") == ["pm"]
    no_frames = CameraFacts("square", True, False, 0, 0)
    assert subjects(problems(healthy(uptime_s=10, cameras=(no_frames,)), CALM, 600),
                    "warning") == ["square"]
    assert subjects(problems(healthy(cameras=(no_frames,)), CALM, 600), "error") == ["square"]


def test_broker_away_is_an_error_after_the_configured_time() -> None:
    facts = healthy(broker=broker(connected=False, last_error="connection refused"))
    assert subjects(problems(facts, Trend(300, 0), 600), "warning") == ["broker"]
    found = problems(facts, Trend(601, 0), 600)
    assert subjects(found, "error") == ["broker"]
    assert "10 min" in found[0].text and "connection refused" in found[0].text


def test_outbox_dropping_disk_full_power_and_clock() -> None:
    facts = healthy(system=replace(SYSTEM, disk_free_mb=20.0, throttled=0x50005,
                                   clock_synchronized=False))
    found = problems(facts, Trend(None, 17), 600)
    assert subjects(found, "error") == ["outbox", "disk"]
    assert subjects(found, "warning") == ["power", "clock"]
    assert "17 measurements" in found[0].text
    past_only = healthy(system=replace(SYSTEM, throttled=0x50000))
    assert problems(past_only, CALM, 600) == []  # throttled since boot, not now


def test_the_tracker_remembers_the_broker_and_the_last_hour_of_drops() -> None:
    tracker = Tracker(0.0)
    tracker.note(False, 5, 0.0)  # 5 dropped in an earlier run: not this hour's news
    assert tracker.broker_down_s(30.0) == 30.0
    tracker.note(True, 5, 40.0)
    assert tracker.broker_down_s(50.0) is None
    tracker.note(False, 9, 100.0)
    assert tracker.broker_down_s(700.0) == 660.0
    assert tracker.dropped_last_hour(9) == 4
    for t in range(110, 3800, 10):
        tracker.note(False, 9, float(t))
    assert tracker.dropped_last_hour(9) == 0


def test_building_the_box_facts_keeps_no_memory() -> None:
    """They are built every 10 s for the trackers, for as long as the box runs."""
    facts = healthy()
    values = [getattr(facts, f.name) for f in fields(BoxFacts)]
    kept = blocks_kept(lambda: BoxFacts(*values), 3000)
    assert kept < 300, f"{kept} Python blocks kept after building the facts 3000 times"


def test_the_tracker_keeps_what_changed_not_every_note() -> None:
    """A day of notes every 5 s with nothing dropped must not hold an hour of them."""
    tracker = Tracker(0.0)
    tracker.note(True, 0, 0.0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for t in range(5, 86_400, 5):
            tracker.note(True, 0, float(t))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 2_000, f"{held} bytes held after a day of unchanged notes"
    tracker.note(True, 3, 86_400.0)  # and the drops are still counted
    tracker.note(True, 3, 86_405.0)
    assert tracker.dropped_last_hour(3) == 3
    assert tracker.dropped_last_hour(4) == 4


def test_the_document_carries_values_with_readable_units() -> None:
    pm = Measurement("pm", "pm2_5", 12.5, "ug/m3", NOW_MS - 1000, 1.0,
                     flags=frozenset({Quality.HIGH_HUMIDITY}),
                     stats=Stats(11.0, 14.0, 5, 300.0))
    crossings = Measurement("square", "line_door_in", 7.0, "{person}", NOW_MS - 5000, 1.0)
    facts = healthy(sensors=(sensor(state="failing", up=False, last_error="CRC"),))
    found = problems(facts, CALM, 600)
    doc = build(facts, CALM, found, {"pm": [pm], "square": [crossings]}, 12_000)
    json.dumps(doc, allow_nan=False)
    assert doc["ok"] is False and doc["problems"][0]["subject"] == "pm"
    value = doc["sensors"][0]["values"][0]  # type: ignore[index]
    assert value == {"quantity": "pm2_5", "label": "PM2.5", "value": 12.5, "unit": "ug/m3",
                     "display_unit": "µg/m³", "time_ms": NOW_MS - 1000,
                     "flags": ["high_humidity"], "min": 11.0, "max": 14.0, "n": 5,
                     "window_s": 300.0}
    assert doc["sensors"][0]["last_seen_age_s"] == 3.0  # type: ignore[index]
    camera = doc["cameras"][0]  # type: ignore[index]
    assert camera["last_seen_ms"] == NOW_MS - 5000
    assert camera["values"][0]["display_unit"] == "people"
    assert doc["system"]["history_mb"] == 0.012  # type: ignore[index]
    assert doc["broker"]["measurements_sent_total"] == 1234  # type: ignore[index]
