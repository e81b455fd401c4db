"""Stage 5 of the tracker: a lost track takes back the person who reappears off its prediction."""

from __future__ import annotations

import numpy as np
import pytest

from agent.vision.counting import CountingLine, SceneCounter
from agent.vision.revival import Reach, revive
from agent.vision.tracker import FrameTracks, Tracker
from agent.vision.tracker_config import TrackerConfig

STRIDE_S = 0.3
"""A Pi analysing every 3rd frame of a 10 frames/s camera."""


def box(foot_x: float, foot_y: float = 300.0, w: float = 50.0, h: float = 120.0) -> list[float]:
    return [foot_x - w / 2, foot_y - h, foot_x + w / 2, foot_y, 0.9]


def stop_behind_a_sign(reappear: list[float], config: TrackerConfig | Tracker,
                       counter: SceneCounter | None = None) -> FrameTracks:
    """Walks left at 100 px/s from x 300 for 0.9 s, is hidden for 1.5 s, reappears (at 2.4 s).

    Hidden, the person stopped (to let someone pass), so the prediction runs
    150 px on: no IoU overlap, and after more than ``gap_max_s`` the distance
    stage no longer looks. Given a tracker, it is the one that sees this.
    """
    tracker = config if isinstance(config, Tracker) else Tracker(config)
    t = 0.0
    frame = tracker.update(np.array([box(300.0)]), t)
    while t < 0.85:
        t = round(t + STRIDE_S, 6)
        frame = tracker.update(np.array([box(300.0 - 100.0 * t)]), t)
        if counter is not None:
            counter.update(frame)
    hidden_until = t + 1.5
    while t + STRIDE_S < hidden_until:
        t = round(t + STRIDE_S, 6)
        frame = tracker.update(np.zeros((0, 5)), t)
        if counter is not None:
            counter.update(frame)
    frame = tracker.update(np.array([reappear]), hidden_until)
    if counter is not None:
        counter.update(frame)
    return frame


def test_a_person_who_stopped_while_hidden_gets_their_track_back() -> None:
    frame = stop_behind_a_sign(box(195.0), TrackerConfig())
    assert [(t.track_id, t.time_since_update) for t in frame.confirmed] == [(1, 0)]
    assert frame.tentative == ()
    off = stop_behind_a_sign(box(195.0), TrackerConfig(reach=Reach(speed=0.0)))
    assert off.tentative and off.tentative[0].track_id == 2, "without stage 5: a new track"


def test_the_crossing_made_while_hidden_is_counted_once() -> None:
    # vertical, crossed leftwards
    line = CountingLine("kerb", (200.0, 0.0), (200.0, 600.0), band_px=16.0)
    counter = SceneCounter([line])
    stop_behind_a_sign(box(170.0), TrackerConfig(), counter)
    assert counter.update(FrameTracks(99.0, ())).crossings == ()
    crossings_with = _crossings(TrackerConfig())
    crossings_without = _crossings(TrackerConfig(reach=Reach(speed=0.0)))
    assert len(crossings_with) == 1 and crossings_with[0][0] == 1
    assert crossings_without == [], "a new track born beyond the line crosses nothing"


def _crossings(config: TrackerConfig) -> list[tuple[int, str]]:
    line = CountingLine("kerb", (200.0, 0.0), (200.0, 600.0), band_px=16.0)
    tracker = Tracker(config)
    counter = SceneCounter([line])
    found: list[tuple[int, str]] = []
    t = 0.0
    feet = [300.0 - 100.0 * k * STRIDE_S for k in range(4)] + [None] * 5 + [170.0] * 4
    for foot in feet:
        dets = np.zeros((0, 5)) if foot is None else np.array([box(foot)])
        counts = counter.update(tracker.update(dets, t))
        found += [(c.track_id, c.direction.name) for c in counts.crossings]
        t = round(t + STRIDE_S, 6)
    return found


@pytest.mark.parametrize("reappear", [
    box(300.0 - 90.0 - 430.0),  # 430 px from where last seen: beyond (1.0 × 1.5 + 0.4) × 120
    box(195.0, h=260.0, w=100.0),  # twice as tall: someone nearer the camera, not them
])
def test_someone_else_appearing_starts_a_track_of_their_own(reappear: list[float]) -> None:
    frame = stop_behind_a_sign(reappear, TrackerConfig())
    assert frame.tentative and frame.tentative[0].track_id == 2
    assert frame.confirmed[0].time_since_update > 0


def test_a_revived_track_proves_again_that_it_is_a_person() -> None:
    # The pipeline's thresholds: boxes from 0.4 may be taken back, only 0.6 proves a person.
    tracker = Tracker(TrackerConfig(high_score=0.4, new_track_score=0.4))
    # Off the walker's predicted path (x 60 by then) and 130 px (1.1 box heights) from
    # where they were last seen: only stage 5 takes it.
    bollard = [*box(200.0, foot_y=430.0)[:4], 0.45]
    frame = stop_behind_a_sign(bollard, tracker)
    assert [(t.track_id, t.time_since_update) for t in frame.confirmed] == [(1, 0)], "revived"
    assert not frame.confirmed[0].proven, "the walker's proof does not pass to what took it"
    t = 2.4
    while t < 8.0:  # it sits there, scoring 0.45, never moving: the jump is no walk
        t = round(t + STRIDE_S, 6)
        assert not tracker.update(np.array([bollard]), t).confirmed[0].proven, t
    for step in range(1, 6):  # a person after all: walks a box height (120 px) from there
        t = round(t + STRIDE_S, 6)
        walked = [*box(200.0 + 30.0 * step, foot_y=430.0)[:4], 0.45]
        frame = tracker.update(np.array([walked]), t)
    assert [(x.track_id, x.proven) for x in frame.confirmed] == [(1, True)]


def test_the_nearest_lost_track_takes_a_box_and_each_track_one_box() -> None:
    seen = np.array([[100.0, 300.0], [180.0, 300.0]])
    heights = np.array([100.0, 100.0])
    lost_s = np.array([0.5, 0.5])
    boxes = np.array([box(170.0, h=100.0)[:4], box(110.0, h=100.0)[:4], box(140.0, h=100.0)[:4]])
    pairs = revive(seen, heights, lost_s, boxes, Reach())
    assert sorted(pairs) == [(0, 1), (1, 0)]
    assert revive(seen, heights, lost_s, boxes, Reach(speed=0.0)) == []
    assert revive(seen[:0], heights[:0], lost_s[:0], boxes, Reach()) == []


@pytest.mark.parametrize("kwargs", [{"speed": -1.0}, {"margin": -0.1}, {"size": 0.9}])
def test_a_reach_that_makes_no_sense_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Reach(**kwargs)
