"""The counter record format and the daemon's gate: only what the camera's config allows."""

from __future__ import annotations

import math
import pickle

import pytest

from agent.config.camera import CameraConfig
from agent.vision.heatmap import CELLS
from agent.vision.record import (
    HEADER,
    MAGIC,
    PAIR,
    Gate,
    Kind,
    Record,
    RecordRejected,
    Schema,
    schema_for,
)

NOW_MS = 1_800_000_000_000


def config(**extra: object) -> CameraConfig:
    return CameraConfig.model_validate({
        "source": "/dev/null", "interval_s": 60, "fps_cap": 10,
        "lines": [{"name": "door", "x1": 0, "y1": 0, "x2": 10, "y2": 10}],
        "zones": [{"name": "kerb", "polygon": [[0, 0], [9, 0], [9, 9]], "area_m2": 4.0,
                   "density_on": 1.0, "density_off": 0.5},
                  {"name": "bench", "polygon": [[0, 0], [9, 0], [9, 9]]}], **extra})


@pytest.fixture
def schema() -> Schema:
    return schema_for(config())


def forged(schema: Schema, kind: Kind, utc_ms: int, pairs: list[tuple[int, float]],
           *, fingerprint: bytes | None = None, version: int = 1) -> bytes:
    header = HEADER.pack(MAGIC, version, kind, fingerprint or schema.fingerprint, utc_ms,
                         len(pairs))
    return header + b"".join(PAIR.pack(i, v) for i, v in pairs)


def test_the_schema_is_exactly_what_the_config_names(schema: Schema) -> None:
    assert schema.names(Kind.INTERVAL) == [
        "frames", "frames_inferred", "fps", "fps_target", "inference_ms_p50", "inference_ms_p95",
        "frames_dropped_total", "source_reconnects_total", "line_door_in", "line_door_out",
        "zone_kerb_occupancy_mean", "zone_kerb_occupancy_max", "zone_kerb_density_mean",
        "zone_kerb_density_max", "zone_bench_occupancy_mean", "zone_bench_occupancy_max",
        "occupancy_mean", "occupancy_max"]
    assert schema.names(Kind.ALERT) == ["zone_kerb_density_alert"]
    assert schema.names(Kind.STATUS) == ["source_up"]
    assert schema.names(Kind.SETUP)[:5] == [
        "frame_width", "frame_height", "heat_people", "setup_line_door_in", "setup_line_door_out"]
    assert schema.names(Kind.SETUP)[5:] == [f"heat_cell_{i}" for i in range(CELLS)]
    # The longest record is set-up's (frame, people, the line's two totals, every cell).
    assert schema.max_size == HEADER.size + (5 + CELLS) * PAIR.size
    other = schema_for(config(lines=[]))
    assert other.fingerprint != schema.fingerprint


def test_a_record_round_trips_coarsened(schema: Schema) -> None:
    data = schema.encode(Kind.INTERVAL, NOW_MS, [
        ("frames", 600), ("fps", 9.87654321), ("occupancy_mean", 2.123456789),
        ("zone_kerb_occupancy_mean", 2.0), ("zone_kerb_density_mean", 0.5000001)])
    record = schema.decode(data)
    assert record == Record(Kind.INTERVAL, NOW_MS, (
        ("frames", 600.0), ("fps", 9.88), ("occupancy_mean", 2.12),
        ("zone_kerb_occupancy_mean", 2.0), ("zone_kerb_density_mean", 0.5)))


def test_the_counter_cannot_encode_a_name_outside_the_schema(schema: Schema) -> None:
    with pytest.raises(ValueError, match="not a interval quantity"):
        schema.encode(Kind.INTERVAL, NOW_MS, [("track_7_x", 412.0)])
    with pytest.raises(ValueError):
        schema.encode(Kind.ALERT, NOW_MS, [("frames", 1)])


REJECTIONS = {
    "an index past the schema": (Kind.INTERVAL, NOW_MS, [(0, 1), (99, 412.0)]),
    "a quantity of another kind": (Kind.ALERT, NOW_MS, [(0, 1)]),
    "a name twice": (Kind.INTERVAL, NOW_MS, [(0, 1), (0, 1)]),
    "no frames": (Kind.INTERVAL, NOW_MS, [(1, 1)]),
    "nan": (Kind.INTERVAL, NOW_MS, [(0, math.nan)]),
    "infinity": (Kind.INTERVAL, NOW_MS, [(0, math.inf)]),
    "negative": (Kind.INTERVAL, NOW_MS, [(0, -1)]),
    "a count with a fraction (a pixel value)": (Kind.INTERVAL, NOW_MS, [(0, 37.25)]),
    "more frames than the frame cap allows": (Kind.INTERVAL, NOW_MS, [(0, 10_000)]),
    "more people than a frame holds": (Kind.INTERVAL, NOW_MS, [(0, 1), (17, 5000)]),
    "milliseconds in the time": (Kind.INTERVAL, NOW_MS + 517, [(0, 1)]),
    "an alert that is not 0 or 1": (Kind.ALERT, NOW_MS, [(18, 0.5)]),
    "two values in an alert": (Kind.ALERT, NOW_MS, [(18, 1), (18, 0)]),
    "a density not from its occupancy": (Kind.INTERVAL, NOW_MS, [(0, 1), (10, 2), (12, 3)]),
    "a density without its occupancy": (Kind.INTERVAL, NOW_MS, [(0, 1), (12, 0.5)]),
}


@pytest.mark.parametrize("kind, utc_ms, pairs", list(REJECTIONS.values()), ids=list(REJECTIONS))
def test_the_daemon_refuses(schema: Schema, kind: Kind, utc_ms: int,
                            pairs: list[tuple[int, float]]) -> None:
    with pytest.raises(RecordRejected):
        schema.decode(forged(schema, kind, utc_ms, pairs))


def test_framing_errors_are_refused(schema: Schema) -> None:
    good = forged(schema, Kind.INTERVAL, NOW_MS, [(0, 1)])
    schema.decode(good)
    bad = {
        "truncated": good[:-3],
        "pair count": good[:-1 * PAIR.size] + PAIR.pack(0, 1)[:4] + bytes(PAIR.size - 4) + b"x",
        "another config": forged(schema, Kind.INTERVAL, NOW_MS, [(0, 1)], fingerprint=b"8bytes!!"),
        "another version": forged(schema, Kind.INTERVAL, NOW_MS, [(0, 1)], version=2),
        "unknown kind": forged(schema, 7, NOW_MS, [(0, 1)]),  # type: ignore[arg-type]
        "pickle": pickle.dumps({"frames": 1}),
        "empty": b"",
        "jpeg": b"\xff\xd8\xff\xe0" + bytes(HEADER.size + PAIR.size - 4),
    }
    for name, data in bad.items():
        with pytest.raises(RecordRejected):
            schema.decode(data)
            pytest.fail(name)


class Clock:
    def __init__(self) -> None:
        self.s = 1000.0

    def now(self) -> float:
        return self.s

    def wall(self) -> int:
        return NOW_MS + round((self.s - 1000.0) * 1000)


def gate(schema: Schema, clock: Clock) -> Gate:
    return Gate(schema, clock.now(), now_s=clock.now, wall_ms=clock.wall)


def interval(end_ms: int, **values: float) -> Record:
    return Record(Kind.INTERVAL, end_ms, (("frames", 1.0), *values.items()))


def test_the_gate_allows_one_interval_per_interval_plus_slack(schema: Schema) -> None:
    clock = Clock()
    g = gate(schema, clock)
    base = NOW_MS - NOW_MS % 60_000
    for k in range(1, 4):  # a catch-up right after the start: within the slack
        g.admit(interval(base - 60_000 * (4 - k)))
    with pytest.raises(RecordRejected, match="more interval records"):
        g.admit(interval(base))
    clock.s += 120
    g = gate(schema, clock)
    clock.s += 120
    g.admit(interval(base + 60_000))
    with pytest.raises(RecordRejected, match="must increase"):
        g.admit(interval(base + 60_000))


def test_one_partial_interval_per_process_and_totals_only_grow(schema: Schema) -> None:
    clock = Clock()
    g = gate(schema, clock)
    base = NOW_MS - NOW_MS % 60_000
    g.admit(interval(base - 60_000, frames_dropped_total=5))
    g.admit(interval(base - 17_000, frames_dropped_total=5))
    with pytest.raises(RecordRejected, match="one partial"):
        g.admit(interval(base - 16_000))
    g = gate(schema, clock)
    g.admit(interval(base - 60_000, source_reconnects_total=3))
    with pytest.raises(RecordRejected, match="went down"):
        g.admit(interval(base, source_reconnects_total=2))


def test_switches_alternate_once_a_second_and_never_come_from_the_future(
        schema: Schema) -> None:
    clock = Clock()
    g = gate(schema, clock)
    alert = "zone_kerb_density_alert"
    with pytest.raises(RecordRejected, match="repeated its state"):
        g.admit(Record(Kind.ALERT, NOW_MS, ((alert, 0.0),)))  # starts off
    g = gate(schema, clock)
    g.admit(Record(Kind.ALERT, NOW_MS - 3000, ((alert, 1.0),)))
    g.admit(Record(Kind.STATUS, NOW_MS - 3000, (("source_up", 1.0),)))
    with pytest.raises(RecordRejected, match="within a second"):
        g.admit(Record(Kind.ALERT, NOW_MS - 3000, ((alert, 0.0),)))
    g = gate(schema, clock)
    with pytest.raises(RecordRejected, match="future"):
        g.admit(Record(Kind.ALERT, NOW_MS + 60_000, ((alert, 1.0),)))


def test_the_switch_rate_is_bounded(schema: Schema) -> None:
    clock = Clock()
    g = gate(schema, clock)
    with pytest.raises(RecordRejected, match="one per second"):
        for k in range(20):
            g.admit(Record(Kind.STATUS, NOW_MS - 40_000 + 1000 * k, (("source_up", k % 2),)))


def test_a_mean_above_its_maximum_and_totals_that_jump_are_refused(schema: Schema) -> None:
    with pytest.raises(RecordRejected, match="above its maximum"):
        schema.decode(forged(schema, Kind.INTERVAL, NOW_MS, [(0, 9), (16, 3.5), (17, 3)]))
    clock = Clock()
    g = gate(schema, clock)
    base = NOW_MS - NOW_MS % 60_000
    g.admit(interval(base - 60_000, frames_dropped_total=7200))  # 120 frames/s for a minute
    with pytest.raises(RecordRejected, match="grew faster"):
        g.admit(interval(base, frames_dropped_total=7200 + 7201))
