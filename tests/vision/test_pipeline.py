"""The counting pipeline: orchestration on synthetic scenes, and crossings on vtest.avi.

Synthetic scenes use ``BlobDetector``: people are white rectangles on black,
and the "detector" reports each white blob as a person. That keeps the
orchestration tests exact (which frame crosses, what the gate holds back)
while the motion gate still looks at real pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config.camera import CameraConfig
from agent.errors import ConfigError
from agent.vision import Detection
from agent.vision.counting import CountingLine, Direction, Zone
from agent.vision.motion import MotionGate, MotionSettings
from agent.vision.pipeline import Pipeline, build_pipeline
from agent.vision.source import Frame, read_video
from tests.vision.streams import INT8_MODEL, require_media

GROUND_TRUTH = Path(__file__).resolve().parent / "ground_truth" / "vtest_line_crossings.json"
W, H = 320, 240


class BlobDetector:
    """Every white blob is a person (score 0.9); counts its calls."""

    def __init__(self) -> None:
        self.roi_ignore: tuple = ()
        self.calls = 0

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        self.calls += 1
        grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        n, _, stats, _ = cv2.connectedComponentsWithStats((grey > 127).astype(np.uint8))
        return [Detection(float(x), float(y), float(x + w), float(y + h), 0.9)
                for x, y, w, h, _ in stats[1:n]]


def scene(*feet: tuple[float, float], scale: float = 1.0) -> np.ndarray:
    """A black frame with a 20x50 px person standing at each foot point (native px)."""
    image = np.zeros((round(H / scale), round(W / scale), 3), np.uint8)
    for x, y in feet:
        cv2.rectangle(image, (round((x - 10) / scale), round((y - 50) / scale)),
                      (round((x + 10) / scale) - 1, round(y / scale) - 1), (255, 255, 255), -1)
    return image


def walk(pipeline: Pipeline, xs, y: float = 180.0, t0: float = 0.0, scale: float = 1.0):
    """One person walking through the given x positions at 10 frames per second."""
    results = []
    for k, x in enumerate(xs):
        frame = Frame(scene((x, y), scale=scale), t0 + k / 10, k, scale)
        results.append(pipeline.process(frame))
    return results


RIGHTWARDS_IS_IN = CountingLine("door", (160.0, 240.0), (160.0, 0.0), band_px=10.0)


def test_a_walker_crossing_the_line_counts_once_in():
    pipeline = Pipeline(BlobDetector(), [RIGHTWARDS_IS_IN], interval_s=1.0, start_s=0.0)
    results = walk(pipeline, range(40, 290, 10))
    crossings = [c for r in results for c in r.counts.crossings]
    assert [c.direction for c in crossings] == [Direction.IN]
    assert crossings[0].t_s == pytest.approx(1.3)  # x 170: 10 px past the line, out of the band
    reports = [rep for r in results for rep in r.closed] + pipeline.finish(2.5)
    values = [dict(rep.values()) for rep in reports]
    assert sum(v["line_door_in"] for v in values) == 1
    assert sum(v["line_door_out"] for v in values) == 0
    assert [rep.record.start_s for rep in reports] == pytest.approx([0.0, 1.0, 2.0])
    assert [v["frames"] for v in values] == [10, 10, 5]
    assert values[0]["fps"] == pytest.approx(10.0) and values[0]["inference_ms_p50"] >= 0


def test_walking_back_counts_out_and_turning_short_of_the_line_counts_nothing():
    pipeline = Pipeline(BlobDetector(), [RIGHTWARDS_IS_IN])
    there = walk(pipeline, [*range(240, 60, -10), *range(60, 150, 10), *range(150, 60, -10)])
    assert [c.direction for r in there for c in r.counts.crossings] == [Direction.OUT]


def test_a_shrunk_frame_is_counted_in_native_pixels_and_ignore_regions_follow():
    detector = BlobDetector()
    native_roi = [(0.0, 0.0), (40.0, 0.0), (40.0, 40.0)]
    pipeline = Pipeline(detector, [RIGHTWARDS_IS_IN], roi_ignore=[native_roi])
    results = walk(pipeline, range(40, 290, 10), scale=2.0)
    # In the half-size frames the walker never gets past x 145: only native px cross 160.
    crossings = [c for r in results for c in r.counts.crossings]
    assert [(c.direction, c.t_s) for c in crossings] == [(Direction.IN, pytest.approx(1.3))]
    assert detector.roi_ignore == (((0.0, 0.0), (20.0, 0.0), (20.0, 20.0)),)


def test_intervals_without_frames_are_reported_empty_and_never_twice():
    pipeline = Pipeline(BlobDetector(), [RIGHTWARDS_IS_IN], interval_s=1.0, start_s=0.0)
    walk(pipeline, [50, 55, 60, 65, 70, 75])
    reports = pipeline.tick(3.2)  # the camera went away after 0.5 s
    assert [(r.record.start_s, r.record.end_s, r.record.frames) for r in reports] == \
        [(0.0, 1.0, 6), (1.0, 2.0, 0), (2.0, 3.0, 0)]
    empty = dict(reports[1].values())
    assert empty == {"frames": 0, "frames_inferred": 0, "fps": 0.0}, "no data is not zero"
    late = pipeline.process(Frame(scene((80, 180)), 3.5, 6))
    assert late.closed == ()
    final = pipeline.finish(4.0)
    assert [(r.record.start_s, r.record.end_s, r.record.frames) for r in final] == \
        [(3.0, 4.0, 1)]


def test_a_frame_stamped_before_a_tick_that_arrives_after_it_still_counts():
    pipeline = Pipeline(BlobDetector(), interval_s=1.0, start_s=0.0)
    pipeline.process(Frame(scene((50, 180)), 0.5, 0))
    assert [r.record.frames for r in pipeline.tick(1.002)] == [1]
    late = pipeline.process(Frame(scene((55, 180)), 0.999, 1))  # read before the tick
    assert late.counts.t_s > 1.002 and late.closed == ()
    assert [r.record.frames for r in pipeline.finish(2.0)] == [1]


def test_motion_gate_holds_the_detector_back_while_nothing_moves():
    detector = BlobDetector()
    gate = MotionGate(MotionSettings(width=80, max_skip_s=1.0))
    pipeline = Pipeline(detector, [], [Zone("all", ((0, 0), (W, 0), (W, H), (0, H)))],
                        interval_s=10.0, start_s=0.0, motion=gate)
    walking = walk(pipeline, range(40, 140, 10))  # 1 s walking in
    calls_walking = detector.calls
    standing = [pipeline.process(Frame(scene((130, 180)), 1.0 + k / 10, 10 + k))
                for k in range(30)]  # then 3 s standing still
    assert calls_walking == 10
    assert detector.calls - calls_walking <= 4, "the gate let static frames through"
    assert gate.held >= 26
    assert all(r.counts.occupancy == 1 for r in standing), "a held frame keeps the result"
    assert [r.inferred for r in walking] == [True] * 10
    report = pipeline.finish(4.0)[0]
    assert report.record.frames == 40 and report.frames_inferred == detector.calls
    assert report.record.occupancy_max == 1


def test_motion_gate_never_holds_back_a_track_waiting_for_confirmation():
    detector = BlobDetector()
    pipeline = Pipeline(detector, motion=MotionGate(MotionSettings(max_skip_s=60.0)))
    # Someone steps in after the first frame (whose people are confirmed at once) and stays.
    still = [pipeline.process(Frame(scene((100, 180)) if k else scene(), k / 10, k))
             for k in range(7)]
    assert [r.inferred for r in still] == [True, True, True, True, False, False, False]
    assert [r.counts.occupancy for r in still] == [0, 0, 0, 1, 1, 1, 1]


def test_small_counts_are_withheld_not_sent_as_zero():
    zone = Zone("kerb", ((0, 0), (W, 0), (W, H), (0, H)), area_m2=10.0)
    pipeline = Pipeline(BlobDetector(), [RIGHTWARDS_IS_IN], [zone], interval_s=10.0,
                        start_s=0.0, suppress_below=2)
    walk(pipeline, range(40, 290, 10))
    values = dict(pipeline.finish(10.0)[0].values())
    assert set(values) == {"frames", "fps"}, \
        "frames analysed and inference time would tell that someone walked by"


def test_density_alert_comes_with_the_frame_not_the_interval():
    zone = Zone("bench", ((200, 100), (300, 100), (300, 240), (200, 240)), area_m2=0.5,
                density_on=2.0, density_off=1.0)
    pipeline = Pipeline(BlobDetector(), zones=[zone], interval_s=60.0, start_s=0.0)
    results = walk(pipeline, range(150, 260, 10))
    alerts = [(r.counts.t_s, a.on) for r in results for a in r.counts.alerts]
    assert len(alerts) == 1 and alerts[0][1] is True
    assert alerts[0][0] < 1.1 and all(not r.closed for r in results)
    values = dict(pipeline.finish(1.1)[0].values())
    assert values["zone_bench_density_max"] == 2.0
    assert values["zone_bench_occupancy_max"] == 1


def test_build_pipeline_maps_the_camera_section():
    config = CameraConfig(
        source="x", model=INT8_MODEL, interval_s=30, suppress_below=3,
        roi_ignore=[[(0, 0), (10, 0), (10, 10)]],
        lines=[{"name": "a", "x1": 0, "y1": 0, "x2": 10, "y2": 10, "hysteresis_px": 8}],
        zones=[{"name": "z", "polygon": [(0, 0), (5, 0), (5, 5)], "area_m2": 2.0}],
        motion={"enabled": False})
    pipeline = build_pipeline(config, start_s=5.0)
    assert pipeline.motion is None and pipeline.interval_s == 30
    assert pipeline.scene.lines == (CountingLine("a", (0, 0), (10, 10), 8.0),)
    assert pipeline.scene.zones[0].area_m2 == 2.0
    assert pipeline.detector.roi_ignore == (((0.0, 0.0), (10.0, 0.0), (10.0, 10.0)),)
    assert build_pipeline(config.model_copy(update={"motion": config.motion.model_copy(
        update={"enabled": True})})).motion is not None


def test_a_file_that_is_no_model_is_a_config_error(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"no model")
    with pytest.raises(ConfigError, match="cannot load"):
        build_pipeline(CameraConfig(source="x", model=junk))


@pytest.mark.slow  # counts a video with the real detector
def test_line_crossings_on_vtest_match_the_hand_count():
    """Frames 150-339 hold six of the eight hand-counted crossings (2 in, 4 out)."""
    truth = json.loads(GROUND_TRUTH.read_text())
    first, last = 150, 339
    expected = [c for c in truth["crossings"] if first <= c["frame"] <= last - 10]
    config = CameraConfig(source="vtest", model=INT8_MODEL, lines=[truth["line"]])
    pipeline = build_pipeline(config)
    found = []
    for frame in read_video(require_media()):
        if frame.index < first:
            continue
        if frame.index > last:
            break
        found += [(frame.index, c.direction.value)
                  for c in pipeline.process(frame).counts.crossings]
    assert sorted(d for _, d in found) == sorted(c["direction"] for c in expected)
    for (frame_no, direction), truth_row in zip(found, expected, strict=True):
        assert direction == truth_row["direction"]
        assert abs(frame_no - truth_row["frame"]) <= 8, (frame_no, truth_row)


def test_fps_of_a_few_frames_just_before_an_interval_ends_is_their_frame_rate():
    """Two frames 40 ms apart, 50 ms before the end: 25 frames/s, not 2 / 0.05 s = 40."""
    pipeline = Pipeline(BlobDetector(), interval_s=1.0, start_s=0.0)
    for k, t in enumerate((0.95, 0.99)):
        pipeline.process(Frame(scene((100, 180)), t, k))
    (report,) = pipeline.process(Frame(scene((100, 180)), 1.03, 2)).closed
    assert report.fps == pytest.approx(25.0)


def test_fps_of_a_partial_interval_is_not_lifted_by_one_short_gap():
    """A source at 25 frames/s that once delivered two frames 20 ms apart (its keep grid
    allows it), stopped 5 ms after its last frame: the partial interval is 2 frames in
    about 25 frames/s, not 2 / 45 ms (the counter's boundary rejects fps over 1.5 × cap)."""
    pipeline = Pipeline(BlobDetector(), interval_s=1.0, start_s=0.0)
    times = [k * 0.04 for k in range(24)] + [0.94, 0.96] + [1.0 + k * 0.04 for k in range(25)]
    times += [2.0, 2.04]
    for k, t in enumerate(times):
        pipeline.process(Frame(scene((100, 180)), t, k))
    last = pipeline.finish(2.045)
    assert last[-1].fps == pytest.approx(25.0, rel=0.1)


def test_occupancy_keeps_a_hidden_person_but_not_one_who_walked_out():
    """Two people walk right; the detector loses both. One is mid-frame (hidden behind
    something): still counted for a while. The other left across the right edge, in native
    pixels of a shrunk frame (the border is the camera's, not the shrunk image's)."""
    pipeline = Pipeline(BlobDetector())
    results = []
    for k in range(12):
        feet = [(60.0 + 4 * k, 180.0), (270.0 + 5 * k, 120.0)] if k < 8 else []
        frame = Frame(scene(*feet, scale=2.0), k / 10, k, 2.0)
        results.append(pipeline.process(frame))
    assert results[7].counts.occupancy == 2
    assert [r.counts.occupancy for r in results[8:]] == [1, 1, 1, 1]
