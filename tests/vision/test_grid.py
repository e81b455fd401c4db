"""Interval ends on the UTC grid while the wall clock drifts and steps (``agent.vision.grid``).

The counter's side (grid, pipeline, the records it sends) runs here against the
daemon's gate, both on one fake clock, so a wall-clock step is a number the test
sets and every record the counter would send is checked as the daemon checks it.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise

import numpy as np
import pytest

from agent.config.camera import CameraConfig
from agent.vision import Detection
from agent.vision.child import Outbound
from agent.vision.grid import UtcGrid
from agent.vision.pipeline import IntervalReport, Pipeline
from agent.vision.record import Gate, Kind, Record, schema_for
from agent.vision.source import Frame
from tests.clock import FakeClock

INTERVAL_S = 60
STEP_MS = INTERVAL_S * 1000
FPS = 5
IMAGE = np.zeros((8, 8, 3), np.uint8)
CONFIG = CameraConfig.model_validate({
    "source": "/dev/null", "interval_s": INTERVAL_S, "fps_cap": FPS,
    "zones": [{"name": "kerb", "polygon": [[0, 0], [9, 0], [9, 9]], "area_m2": 4.0,
               "density_on": 1.0, "density_off": 0.5}]})


class NoOne:
    """A detector that sees nobody: the test is about time, not people."""

    roi_ignore: tuple = ()

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        return []


class DaemonSide:
    """The pipe's far end: decodes and gates every record as the daemon does."""

    def __init__(self, clock: FakeClock) -> None:
        self.schema = schema_for(CONFIG)
        self.gate = Gate(self.schema, clock.monotonic(), now_s=clock.monotonic,
                         wall_ms=clock.wall_ms)
        self.records: list[Record] = []

    def send_bytes(self, data: bytes) -> None:
        self.records.append(self.gate.admit(self.schema.decode(data)))

    def intervals(self) -> list[Record]:
        return [r for r in self.records if r.kind is Kind.INTERVAL]


def count(clock: FakeClock, minutes: float, wall_moves: dict[int, int]) -> tuple[DaemonSide, int]:
    """Run the counter's loop on empty frames; ``wall_moves``: frame index → ms the wall
    clock moves by just before it. Returns the daemon's side and the frames processed."""
    daemon = DaemonSide(clock)
    outbound = Outbound(daemon.schema, daemon, clock)  # type: ignore[arg-type]
    grid = UtcGrid(clock, INTERVAL_S)
    pipeline = Pipeline(NoOne(), interval_s=INTERVAL_S, start_s=grid.start_s)
    frames = round(minutes * 60 * FPS)

    def send(reports: Iterable[IntervalReport]) -> None:
        for report in reports:
            outbound.interval(grid.reported(report.record.end_s), report.values())

    for k in range(frames):
        clock.wall_offset_ms += wall_moves.get(k, 0)
        if grid.moved():
            send(pipeline.follow(grid.follow()))
        send(pipeline.process(Frame(IMAGE, clock.monotonic(), k, 1.0)).closed)
        clock.now += 1 / FPS
    send(pipeline.finish(clock.monotonic()))
    return daemon, frames


STEPS = {
    "3 s forward": {600: 3_000},
    "45 s forward, most of an interval": {900: 45_000},
    "an hour forward (a Pi's first NTP sync)": {600: 3_600_000},
    "3 s back": {600: -3_000},
    "an hour back": {600: -3_600_000},
    "two steps in one interval": {400: 20_000, 500: -50_000},
    "drift: 40 ms every 20 s, 4.8 s in all": {k: 40 for k in range(100, 12_000, 100)},
}


def steps(moves: dict[int, int]) -> int:
    return sum(abs(m) > 1000 for m in moves.values())


@pytest.mark.parametrize("phase_s", [0.0, 0.3, 17.0, 29.9, 44.6, 58.1, 59.7])
@pytest.mark.parametrize("moves", STEPS.values(), ids=STEPS.keys())
def test_a_wall_clock_step_keeps_the_grid_loses_no_frame_and_passes_the_gate(
        moves: dict[int, int], phase_s: float) -> None:
    clock = FakeClock()
    clock.wall_offset_ms = round(phase_s * 1000) - clock.wall_ms() % STEP_MS
    daemon, frames = count(clock, 12, moves)  # every record passes the daemon's gate
    ends = [r.utc_ms for r in daemon.intervals()]
    off_grid = [end for end in ends[:-1] if end % STEP_MS]
    assert len(off_grid) <= steps(moves), "off the grid: only a cut at a step, and the stop"
    counted = sum(dict(r.values)["frames"] for r in daemon.intervals())
    assert counted == frames, "every frame is in exactly one interval"
    longest = max(dict(r.values)["frames"] for r in daemon.intervals())
    assert longest <= (INTERVAL_S + 1) * FPS + 1, "none longer than interval_s and 1 s drift"
    went_back = [a - b for a, b in pairwise(ends) if b <= a]
    assert sum(went_back) <= -sum(m for m in moves.values() if m < 0), "back by a step only"


def test_a_step_cuts_the_interval_in_progress_and_the_next_one_ends_on_the_new_grid():
    clock = FakeClock()
    clock.wall_offset_ms = 30_000 - clock.wall_ms() % STEP_MS
    start_ms = clock.wall_ms()  # half-way through an interval
    daemon, _ = count(clock, 5, {100: -150_000})  # 20 s later: 2.5 min back
    ends = [r.utc_ms for r in daemon.intervals()]
    assert ends[0] == start_ms + 20_000 - 150_000, "cut when the step was seen, on the new time"
    assert ends[1] == ends[0] + 40_000 and ends[1] % STEP_MS == 0, "then the new grid"
    assert [b - a for a, b in pairwise(ends[1:-1])] == [STEP_MS] * 3


def test_drift_within_tolerance_leaves_the_grid_point_where_it_was() -> None:
    clock = FakeClock()
    grid = UtcGrid(clock, INTERVAL_S)
    end_ms = (clock.wall_ms() // STEP_MS + 1) * STEP_MS
    clock.wall_offset_ms += 300  # NTP slewed 0.3 s
    assert grid.moved()
    anchoring = grid.follow()
    assert anchoring.cut_s is None and grid.reported(anchoring.end_s) == end_ms


def test_a_switch_after_a_step_back_goes_out_one_real_second_later() -> None:
    clock = FakeClock()
    daemon = DaemonSide(clock)
    outbound = Outbound(daemon.schema, daemon, clock)  # type: ignore[arg-type]
    outbound.switch(Kind.STATUS, "source_up", True)
    clock.now += 1.0
    clock.wall_offset_ms -= 3_600_000
    outbound.switch(Kind.STATUS, "source_up", False)
    assert [dict(r.values)["source_up"] for r in daemon.records] == [1.0, 0.0]
    assert daemon.records[1].utc_ms < daemon.records[0].utc_ms, "stamped on the new wall time"
    outbound.switch(Kind.STATUS, "source_up", True)
    assert len(daemon.records) == 2, "still one switch a second"
    clock.now += 1.0
    outbound.flush()
    assert len(daemon.records) == 3
