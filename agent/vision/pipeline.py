"""Frame → detections → tracks → counts → interval reports: the counter's orchestration.

``Pipeline.process(frame)`` runs one frame through the stages built elsewhere
(motion gate, detector, tracker, line/zone counter, interval folding) and
returns what the frame added plus any interval it closed. Nothing here
reads a camera, writes anything or knows about processes: the live counter
process (``agent.vision.process``) and ``lokaalmeten count`` drive the same
pipeline, one with the monotonic clock, the other with video time.

Coordinates: lines, zones and ignore regions are configured in the camera's
native pixels. A frame shrunk on read carries its ``scale`` (native px per
frame px); detections are scaled up to native pixels before tracking, and the
ignore regions are scaled down once for the detector, which applies them
before its non-maximum suppression.

Motion gating: a frame the gate holds back (nothing changed since the last
analysed frame) is not shown to the detector; the last analysed frame's
detections stand for it and go to the tracker again, so people who stopped
keep their tracks (and their velocity decays) instead of being predicted
away and lost. While a tentative track waits for the consecutive hits that
confirm it, every frame is analysed: a one-frame false positive must not be
confirmed by repetition.

Background: every analysed frame also updates a slow average of the scene
(``agent.vision.background``); each detection goes to the tracker with the
share of its box that stands out from it, one of the tracker's proofs that a
box that neither scores high nor walks is a person and not a cone.

Intervals lie on a grid from ``start_s`` (default: the first frame's time).
``tick(t_s)`` closes every interval that ended by ``t_s`` even when no frame
came (a dead camera reports empty intervals: frames 0, no person figures),
so the caller calls it when it waits for frames in vain.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from agent.config.camera import CameraConfig
from agent.vision import Detection
from agent.vision.background import Background
from agent.vision.counting import CountingLine, FrameCounts, SceneCounter, Zone
from agent.vision.grid import Anchoring
from agent.vision.intervals import IntervalCounter, IntervalRecord, LineTotals, ZoneStats
from agent.vision.motion import MotionGate, MotionSettings
from agent.vision.source import Frame
from agent.vision.tracker import FrameTracks, Tracker
from agent.vision.tracker_config import TrackerConfig

Polygon = tuple[tuple[float, float], ...]

COAST_S = 2.5
"""A person the detector misses (hidden behind a lamp post, a sign or another person) still
counts towards occupancy this long (s), at the tracker's prediction, unless it is predicted
at the frame's border (walked out), and only while the tracker keeps the track (at 10 fps
``max_age`` ends it after 1.5 s). Chosen on vtest's tuning half with bench/accuracy.py, at
every 1st/2nd/3rd/5th frame: 0.5 s undercounted by 0.29/0.39/0.32/0.59 persons per frame,
1.5 s by 0.17/0.26/0.19/0.34, 2.5 s by 0.17/0.14/0.12/0.11 at about the same MAE."""
RECENT_FRAMES = 32
"""Frames whose mean spacing gives the frame period (``_frame_period``)."""
LOW_SCORE = 0.2
"""Boxes down to this score go to the tracker, which only lets them keep existing tracks
alive (ByteTrack's second stage); below it they are mostly clutter that a coasting track
would follow."""

log = logging.getLogger(__name__)


def disable_onnxruntime_telemetry() -> None:
    """Switch off ONNX Runtime's own telemetry; must run before onnxruntime is imported.

    The official Linux wheels (1.32 here) carry Microsoft's 1DS telemetry: on
    the first session they write a device id and an event queue (process,
    OS, CPU, executable path, errors) under ~/.cache/Microsoft/DeveloperTools
    and upload it when they can. ``ORT_DISABLE_TELEMETRY=1``, set before the
    library loads, stops all of it (no id, no cache, no upload); set later,
    it does nothing. tests/vision/test_privacy.py checks the result.
    """
    was_off = os.environ.get("ORT_DISABLE_TELEMETRY") == "1"
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    if "onnxruntime" in sys.modules and not was_off:
        log.warning("onnxruntime was imported before its telemetry could be switched off")


class PersonDetector(Protocol):
    """What the pipeline needs of ``agent.vision.detector.Detector`` (tests pass fakes)."""

    roi_ignore: tuple[Polygon, ...]

    def detect(self, frame_bgr: NDArray[np.uint8]) -> list[Detection]: ...


@dataclass(frozen=True, slots=True)
class IntervalReport:
    """One closed interval: the counts and how the pipeline kept up, numbers only."""

    record: IntervalRecord
    frames_inferred: int
    """Frames the detector analysed (the others were held back by the motion gate)."""
    inference_ms_p50: float | None
    inference_ms_p95: float | None
    """Detector time per analysed frame (preprocess + model + postprocess), ms."""
    fps: float
    """Frames processed per second of the interval."""

    def values(self) -> list[tuple[str, float]]:
        """Quantity name → value, as published; withheld and unknown figures are left out."""
        r = self.record
        out: list[tuple[str, float]] = [("frames", r.frames), ("fps", self.fps)]
        # How many frames the detector analysed, and how long it took, follow the motion
        # and the people in view: with the occupancy withheld they would tell it anyway
        # (2 of 100 frames analysed: someone walked by).
        if r.suppress_below == 0 or r.occupancy_mean is not None:
            out.append(("frames_inferred", self.frames_inferred))
            if self.inference_ms_p50 is not None and self.inference_ms_p95 is not None:
                out += [("inference_ms_p50", self.inference_ms_p50),
                        ("inference_ms_p95", self.inference_ms_p95)]
        for line in r.lines:
            out += _present((f"line_{line.line}_in", line.in_count),
                            (f"line_{line.line}_out", line.out_count))
        for zone in r.zones:
            z = f"zone_{zone.zone}"
            out += _present((f"{z}_occupancy_mean", zone.occupancy_mean),
                            (f"{z}_occupancy_max", zone.occupancy_max),
                            (f"{z}_density_mean", zone.density_mean),
                            (f"{z}_density_max", zone.density_max))
        out += _present(("occupancy_mean", r.occupancy_mean), ("occupancy_max", r.occupancy_max))
        return out


@dataclass(frozen=True, slots=True)
class FrameResult:
    """What one frame produced."""

    counts: FrameCounts
    detections: int
    """Boxes the detector found in this frame scoring at least the tracker's ``high_score``
    (in the last analysed frame, if held back): the raw count the tracker improves on."""
    inferred: bool
    closed: tuple[IntervalReport, ...]
    """Intervals that ended before this frame."""
    tracks: FrameTracks
    """The tracker's output for this frame (stays in the counter process)."""


class Pipeline:
    """Runs frames through gate, detector, tracker and counters (module docstring)."""

    def __init__(
        self,
        detector: PersonDetector,
        lines: Sequence[CountingLine] = (),
        zones: Sequence[Zone] = (),
        *,
        roi_ignore: Sequence[Sequence[tuple[float, float]]] = (),
        interval_s: float = 60.0,
        suppress_below: int = 0,
        start_s: float | None = None,
        motion: MotionGate | None = None,
        background: Background | None = None,
        tracker: Tracker | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.detector = detector
        self.motion = motion
        self.background = background
        self.tracker = tracker or Tracker()
        self.scene = SceneCounter(lines, zones, coast_s=COAST_S)
        self.interval_s = interval_s
        self._intervals = IntervalCounter(lines, zones, interval_s=interval_s,
                                          suppress_below=suppress_below, start_s=start_s)
        self._roi = tuple(tuple((float(x), float(y)) for x, y in p) for p in roi_ignore)
        self._roi_scale: float | None = None
        self._timer = timer
        self._start = start_s
        """Where the interval in progress began: the grid's start or the last end."""
        self._end = None if start_s is None else start_s + interval_s
        self._reported_end = -math.inf
        self._last_t = -math.inf
        self._first_t: float | None = None
        """Time of the first frame: counting started then, not at its interval's start."""
        self._recent_t: deque[float] = deque(maxlen=RECENT_FRAMES)
        """Times of the last frames: their mean spacing is the source's frame period."""
        self._detections: list[Detection] = []
        self._rows = np.zeros((0, 6))
        """The detections as the tracker takes them, with each box's foreground share."""
        self._analysed = False
        self._tentative = False
        self._inference_ms: list[float] = []

    def process(self, frame: Frame) -> FrameResult:
        """Count one frame; close the intervals that ended before it."""
        t = max(frame.t_s, math.nextafter(self._last_t, math.inf))
        self._last_t = t
        if self._first_t is None:
            self._first_t = t
        self._recent_t.append(t)
        if self._end is None:
            self._start, self._end = t, t + self.interval_s
        closed = self.tick(t)
        changed = self.motion is None or self.motion.check(frame.image, t)
        # A new track needs consecutive real hits to be confirmed: never hold those back.
        inferred = changed or self._tentative or not self._analysed
        if inferred:
            self._detections = self._detect(frame)
            self._rows = self._with_foreground(frame, t)
            self._analysed = True
        height, width = frame.image.shape[:2]
        self.scene.frame_size = (width * frame.scale, height * frame.scale)
        tracks = self.tracker.update(self._rows, t)
        self._tentative = bool(tracks.tentative)
        counts = self.scene.update(tracks)
        late = self._intervals.add(counts)
        closed += [self._report(r) for r in late if r.end_s > self._reported_end + 1e-9]
        sure = sum(d.score >= self.tracker.config.high_score for d in self._detections)
        return FrameResult(counts, sure, inferred, tuple(closed), tracks)

    def tick(self, t_s: float) -> list[IntervalReport]:
        """Close every interval that ended at or before ``t_s``, with or without frames.

        The pipeline's clock never runs back: a frame stamped before ``t_s`` that
        arrives later counts as taken just after it.
        """
        self._last_t = max(self._last_t, t_s)
        reports: list[IntervalReport] = []
        while self._end is not None and t_s >= self._end:
            start = self._end if self._start is None else self._start
            record = self._intervals.flush(self._end) or self._empty(start, self._end)
            reports.append(self._report(record))
            self._start, self._end = self._end, self._end + self.interval_s
        return reports

    def follow(self, anchoring: Anchoring) -> list[IntervalReport]:
        """Go on after the counter's wall clock moved (``agent.vision.grid``).

        Drift moves the monotonic end of the interval in progress; a step cuts
        it at ``cut_s`` (reported like the partial one at a stop) and the next
        interval ends at the new grid point.
        """
        reports = []
        if anchoring.cut_s is not None:
            record = self._intervals.flush(anchoring.cut_s)
            if record is not None:
                reports.append(self._report(record))
            self._start = anchoring.cut_s
            self._last_t = max(self._last_t, anchoring.cut_s)
        self._end = anchoring.end_s
        self._intervals.move_end(anchoring.end_s)
        return reports

    def finish(self, t_s: float) -> list[IntervalReport]:
        """Close everything at ``t_s`` (shutdown, end of video), the partial interval too."""
        reports = self.tick(t_s)
        record = self._intervals.flush(t_s)
        if record is not None and record.end_s > self._reported_end + 1e-9:
            reports.append(self._report(record))
        return reports

    def _detect(self, frame: Frame) -> list[Detection]:
        if self._roi and frame.scale != self._roi_scale:
            self.detector.roi_ignore = tuple(
                tuple((x / frame.scale, y / frame.scale) for x, y in p) for p in self._roi)
            self._roi_scale = frame.scale
        start = self._timer()
        found = self.detector.detect(frame.image)
        self._inference_ms.append((self._timer() - start) * 1000.0)
        if frame.scale == 1.0:
            return found
        s = frame.scale
        return [Detection(d.x1 * s, d.y1 * s, d.x2 * s, d.y2 * s, d.score) for d in found]

    def _with_foreground(self, frame: Frame, t_s: float) -> NDArray[np.float64]:
        """The detections as rows for the tracker, the last column from the background."""
        rows = np.array([(d.x1, d.y1, d.x2, d.y2, d.score, 0.0) for d in self._detections],
                        dtype=np.float64).reshape(-1, 6)
        if self.background is not None:
            rows = rows[np.argsort(-rows[:, 4], kind="stable")]  # most confident first
            rows[:, 5] = self.background.update(frame.image, t_s, rows[:, :4] / frame.scale)
        return rows

    def _report(self, record: IntervalRecord) -> IntervalReport:
        times = np.asarray(self._inference_ms)
        self._inference_ms = []
        self._reported_end = max(self._reported_end, record.end_s)
        # Frames per second of counting: the first interval on the grid began before the
        # first frame (the daemon starts mid-interval), and the partial last one ends
        # where finish() was called, maybe just after a frame. Each frame stands for one
        # frame period, the mean spacing of the recent frames: two frames 40 ms apart just
        # before an interval ends are 25 frames/s, not 2 / 0.05 s. (Not the shortest
        # spacing: the source keeps frames on a grid that lets two come half a period
        # apart now and then.)
        begun = record.start_s if self._first_t is None else max(record.start_s, self._first_t)
        duration = max(record.end_s - begun,
                       min(record.frames * self._frame_period(), self.interval_s))
        p50, p95 = (None, None) if times.size == 0 else (
            float(np.percentile(times, 50)), float(np.percentile(times, 95)))
        return IntervalReport(record, int(times.size), p50, p95,
                              record.frames / duration if duration > 0 else 0.0)

    def _frame_period(self) -> float:
        """Mean spacing of the recent frames (infinite before the second frame)."""
        times = self._recent_t
        return math.inf if len(times) < 2 else (times[-1] - times[0]) / (len(times) - 1)

    def _empty(self, start: float, end: float) -> IntervalRecord:
        """An interval without frames: no data, which is not zero people."""
        return IntervalRecord(
            start_s=start, end_s=end, frames=0,
            lines=tuple(LineTotals(x.name, None, None) for x in self.scene.lines),
            zones=tuple(ZoneStats(z.name, None, None, None, None) for z in self.scene.zones),
            occupancy_mean=None, occupancy_max=None, alerts=(),
            suppress_below=self._intervals.suppress_below)


def _present(*pairs: tuple[str, float | None]) -> list[tuple[str, float]]:
    return [(name, value) for name, value in pairs if value is not None]


def build_pipeline(config: CameraConfig, *, start_s: float | None = None,
                   motion: bool | None = None) -> Pipeline:
    """The pipeline a camera section describes; loads the model (ConfigError if it cannot).

    ``motion`` overrides the section's motion gating (offline counting may want
    every frame analysed).
    """
    disable_onnxruntime_telemetry()
    from agent.vision.detector import Detector  # noqa: PLC0415 - onnxruntime, counter only

    person = config.score_threshold
    detector = Detector(config.model, config.decoder, input_size=config.input_size,
                        score_threshold=min(LOW_SCORE, person), nms_iou=config.nms_iou,
                        roi_ignore=config.roi_ignore, intra_op_threads=config.threads)
    tracker = Tracker(TrackerConfig(low_score=min(LOW_SCORE, person), high_score=person,
                                    new_track_score=person,
                                    proof_score=max(person, TrackerConfig().proof_score)))
    lines = [CountingLine(x.name, (x.x1, x.y1), (x.x2, x.y2), band_px=x.hysteresis_px)
             for x in config.lines]
    zones = [Zone(z.name, tuple(z.polygon), z.area_m2, z.density_on, z.density_off)
             for z in config.zones]
    m = config.motion
    gate = MotionGate(MotionSettings(m.width, m.pixel_threshold, m.min_changed_fraction,
                                     m.max_skip_s)) if (m.enabled if motion is None else motion) \
        else None
    return Pipeline(detector, lines, zones, roi_ignore=config.roi_ignore,
                    interval_s=config.interval_s, suppress_below=config.suppress_below,
                    start_s=start_s, motion=gate, background=Background(), tracker=tracker)
