"""Multi-object tracker: ByteTrack association over a time-aware Kalman filter.

One ``Tracker.update(detections, t_s)`` per processed frame. The algorithm is
ByteTrack's (Zhang et al., ECCV 2022), with the box filter of
``agent.vision.kalman`` driven by frame timestamps:

1. Predict every live track to the frame's time ``t_s`` (dt from the previous
   processed frame, so dropped frames simply make a longer step).
2. Split detections by score: *high* (≥ ``high_score``) and *low*
   (``low_score`` ≤ score < ``high_score``); lower ones are ignored.
3. Stage 1: confirmed tracks (tracked and lost) ↔ high detections, by IoU of
   predicted and detected boxes, optimal (Hungarian) assignment.
4. Stage 2: confirmed tracks still unmatched ↔ low detections, with a
   stricter IoU. A person half hidden behind a lamp post scores low but is
   still there: this keeps the track alive instead of letting it coast. Low
   detections never start tracks. (ByteTrack proper offers low detections
   only to tracks matched in the previous frame; ``low_match_lost`` says why
   lost tracks compete here too.)
5. Stage 3: tentative tracks ↔ the remaining high detections.
6. Unmatched high detections scoring ≥ ``new_track_score`` start tentative
   tracks. A tentative track is confirmed after ``n_init`` consecutive hits (or two
   hits ``confirm_s`` apart, at low frame rates) and
   deleted at its first miss, so one-frame false positives never get an id
   that a counter could see.
7. A confirmed track that misses is *lost* (coasts on its prediction) and is
   deleted after more than ``max_age`` frames or ``max_lost_s`` seconds without a
   hit, whichever comes first: frames bound the work when the detector keeps
   up, seconds bound the extrapolation when frames are sparse.

Ids are positive integers handed out in order of birth and never reused;
tentative tracks that die leave gaps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from agent.vision.geometry import Point, foot_point, iou_matrix
from agent.vision.kalman import MotionModel, boxes_to_measurements, states_to_boxes

Array = NDArray[np.float64]


@runtime_checkable
class BoxLike(Protocol):
    """Anything with a box in frame pixels and a score (e.g. the detector's Detection)."""

    @property
    def x1(self) -> float: ...
    @property
    def y1(self) -> float: ...
    @property
    def x2(self) -> float: ...
    @property
    def y2(self) -> float: ...
    @property
    def score(self) -> float: ...


Detections = NDArray[np.floating] | Sequence[BoxLike]
"""An (N, ≥5) array of x1, y1, x2, y2, score (extra columns ignored) or a sequence of boxes."""


MIN_TENTATIVE_GATE = 1 / 3


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Association thresholds and track life cycle."""

    high_score: float = 0.5
    """Detections at or above this take part in stage 1 and may start tracks."""
    low_score: float = 0.1
    """Detections below this are ignored; between this and ``high_score`` only stage 2."""
    new_track_score: float = 0.6
    """Minimum score of a detection that starts a track (ByteTrack: high + 0.1)."""
    match_iou: float = 0.2
    """Minimum IoU of a stage-1 match (ByteTrack's match_thresh 0.8 as a cost)."""
    low_match_iou: float = 0.5
    """Minimum IoU of a stage-2 match: low detections are doubtful, so be strict."""
    tentative_match_iou: float = 0.3
    """Minimum IoU for a tentative track to take a detection."""
    reference_dt_s: float = 0.1
    """Frame gap the tentative IoU gate is meant for. With longer gaps (a Pi analysing
    every 3rd frame) it is lowered in proportion, down to a third: a tentative track has
    no velocity yet to predict with, and a person walks further between analysed frames,
    so a fixed gate let new tracks die before they were confirmed (at every 3rd frame the
    occupancy error fell from 1.19 to 0.8 persons). Confirmed tracks predict with their
    velocity and keep their gate, so people who cross do not swap ids."""
    low_match_lost: bool = True
    """Let lost tracks take part in stage 2 too. ByteTrack offers low detections
    only to tracks matched in the previous frame; then, when two people overlap
    and the front one's box is missed for a frame, the front track grabs the
    hidden one's low box while the hidden one's own (lost) track cannot compete
    for it. With lost tracks in the optimal assignment the better overlap wins;
    the IoU gate keeps a coasting track from latching onto clutter."""
    fuse_score: bool = True
    """Stage 1 prefers confident detections: assignment cost 1 − IoU·score."""
    n_init: int = 3
    """Consecutive hits (counting the first) before a track is confirmed."""
    confirm_s: float = 0.3
    """... or two consecutive hits this far apart in time: at a low analysis rate (a Pi
    analysing every 3rd or 5th frame) three hits take a second or more, and people in
    view for less are never counted; two hits this far apart are no one-frame blip."""
    max_age: int = 15
    """A lost track dies after more than this many processed frames without a hit."""
    max_lost_s: float = 3.0
    """... or after more than this many seconds without a hit."""
    motion: MotionModel = field(default_factory=MotionModel)
    """Noise levels of the Kalman filter."""

    def __post_init__(self) -> None:
        if not 0 <= self.low_score <= self.high_score <= self.new_track_score:
            raise ValueError("need 0 <= low_score <= high_score <= new_track_score")
        if self.n_init < 1 or self.max_age < 0 or self.max_lost_s < 0:
            raise ValueError("n_init must be >= 1, max_age and max_lost_s >= 0")


@dataclass(frozen=True, slots=True)
class Track:
    """One track as seen after a frame; also a ``BoxLike``."""

    track_id: int
    x1: float
    y1: float
    x2: float
    y2: float
    """Filtered box in frame pixels (the prediction while the track is lost)."""
    vx: float
    vy: float
    """Velocity of the box centre, px/s."""
    score: float
    """Score of the last matched detection."""
    age: int
    """Processed frames since birth (1 on the frame it was born)."""
    hits: int
    """Frames with a matched detection."""
    time_since_update: int
    """Processed frames since the last matched detection (0: matched this frame)."""
    lost_s: float
    """Seconds since the last matched detection."""
    confirmed: bool

    @property
    def foot(self) -> Point:
        """Bottom-centre of the box: the reference point for lines and zones."""
        return foot_point(self.x1, self.y1, self.x2, self.y2)


@dataclass(frozen=True, slots=True)
class FrameTracks:
    """Tracker output for one frame."""

    t_s: float
    """The frame's timestamp, as passed to ``Tracker.update``."""
    confirmed: tuple[Track, ...]
    """Confirmed tracks, including lost ones still coasting (time_since_update > 0)."""
    tentative: tuple[Track, ...] = ()
    """Tracks not confirmed yet; matched this frame by construction."""

    @property
    def active(self) -> tuple[Track, ...]:
        """Confirmed tracks matched to a detection in this frame."""
        return tuple(t for t in self.confirmed if t.time_since_update == 0)


@dataclass(slots=True, eq=False)
class _State:
    """Mutable per-track bookkeeping; the filter state lives beside it."""

    track_id: int
    mean: Array
    cov: Array
    score: float
    last_hit_s: float
    born_s: float
    age: int = 1
    hits: int = 1
    misses: int = 0
    confirmed: bool = False


def detections_array(detections: Detections) -> Array:
    """Detections as an (N, 5) float array; non-finite and empty boxes are dropped."""
    if isinstance(detections, np.ndarray):
        arr = np.asarray(detections, dtype=np.float64)
        if arr.size == 0:
            return np.zeros((0, 5))
        if arr.ndim != 2 or arr.shape[1] < 5:
            raise ValueError("a detection array needs shape (N, >=5): x1, y1, x2, y2, score")
        arr = arr[:, :5]
    else:
        arr = np.array(
            [(d.x1, d.y1, d.x2, d.y2, d.score) for d in detections], dtype=np.float64
        ).reshape(-1, 5)
    ok = np.isfinite(arr).all(axis=1) & (arr[:, 2] > arr[:, 0]) & (arr[:, 3] > arr[:, 1])
    return arr[ok]


class Tracker:
    """ByteTrack multi-object tracker; see the module docstring for the rules."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracks: list[_State] = []
        self._next_id = 1
        self._last_t: float | None = None

    def reset(self) -> None:
        """Forget all tracks (ids keep counting up, so none is ever reused)."""
        self._tracks = []
        self._last_t = None

    def update(self, detections: Detections, t_s: float) -> FrameTracks:
        """Advance to the frame at ``t_s`` (seconds, strictly increasing) and associate."""
        if not math.isfinite(t_s) or (self._last_t is not None and t_s <= self._last_t):
            raise ValueError(f"frame timestamps must increase strictly, got {t_s!r}")
        dt = 0.0 if self._last_t is None else t_s - self._last_t
        self._last_t = t_s
        cfg = self.config
        dets = detections_array(detections)
        dets = dets[dets[:, 4] >= cfg.low_score]
        self._predict(dt)

        tracks = self._tracks
        high = np.flatnonzero(dets[:, 4] >= cfg.high_score)
        low = np.flatnonzero(dets[:, 4] < cfg.high_score)
        confirmed = [i for i, t in enumerate(tracks) if t.confirmed]
        tentative = [i for i, t in enumerate(tracks) if not t.confirmed]
        boxes = states_to_boxes(np.array([t.mean for t in tracks]).reshape(-1, 8))

        pairs1, rest_t, rest_high = _associate(
            boxes, dets, confirmed, high, min_iou=cfg.match_iou, fuse_score=cfg.fuse_score
        )
        if not cfg.low_match_lost:
            rest_t = [i for i in rest_t if tracks[i].misses == 0]
        pairs2, _, _ = _associate(
            boxes, dets, rest_t, low, min_iou=cfg.low_match_iou, fuse_score=False
        )
        pairs3, _, unmatched_high = _associate(
            boxes, dets, tentative, rest_high,
            min_iou=cfg.tentative_match_iou * self._tentative_gate(dt), fuse_score=False
        )
        matched = pairs1 + pairs2 + pairs3
        self._correct(matched, dets, t_s)

        hit = {i for i, _ in matched}
        survivors: list[_State] = []
        for i, t in enumerate(tracks):
            if i not in hit:
                if not t.confirmed:
                    continue  # a tentative track dies at its first miss
                t.misses += 1
                if t.misses > cfg.max_age or t_s - t.last_hit_s > cfg.max_lost_s:
                    continue
            survivors.append(t)
        births = [j for j in unmatched_high if dets[j, 4] >= cfg.new_track_score]
        survivors.extend(self._birth(dets[births], t_s))
        self._tracks = survivors
        return self._snapshot(t_s)

    def _tentative_gate(self, dt: float) -> float:
        """How far the tentative IoU gate is lowered for a frame gap ``dt`` (1 to 1/3)."""
        if dt <= self.config.reference_dt_s:
            return 1.0
        return max(MIN_TENTATIVE_GATE, self.config.reference_dt_s / dt)

    def _predict(self, dt: float) -> None:
        if not self._tracks or dt == 0.0:
            return
        mean = np.array([t.mean for t in self._tracks])
        cov = np.array([t.cov for t in self._tracks])
        lost = np.array([t.misses > 0 for t in self._tracks])
        mean[lost, 6:8] = 0.0  # a hidden person does not keep growing (as ByteTrack)
        mean, cov = self.config.motion.predict(mean, cov, dt)
        for t, m, c in zip(self._tracks, mean, cov, strict=True):
            t.mean, t.cov = m, c
            t.age += 1

    def _correct(self, matched: list[tuple[int, int]], dets: Array, t_s: float) -> None:
        if not matched:
            return
        tracks = [self._tracks[i] for i, _ in matched]
        rows = dets[[j for _, j in matched]]
        mean, cov = self.config.motion.update(
            np.array([t.mean for t in tracks]),
            np.array([t.cov for t in tracks]),
            boxes_to_measurements(rows[:, :4]),
        )
        for t, m, c, row in zip(tracks, mean, cov, rows, strict=True):
            t.mean, t.cov, t.score, t.last_hit_s = m, c, float(row[4]), t_s
            t.hits += 1
            if t.misses > 0:
                t.misses = 0
            elif not t.confirmed and (t.hits >= self.config.n_init or
                                      t_s - t.born_s >= self.config.confirm_s):
                t.confirmed = True

    def _birth(self, rows: Array, t_s: float) -> list[_State]:
        if rows.shape[0] == 0:
            return []
        mean, cov = self.config.motion.initiate(boxes_to_measurements(rows[:, :4]))
        born = []
        for m, c, row in zip(mean, cov, rows, strict=True):
            born.append(
                _State(
                    track_id=self._next_id,
                    mean=m,
                    cov=c,
                    score=float(row[4]),
                    last_hit_s=t_s,
                    born_s=t_s,
                    confirmed=self.config.n_init <= 1,
                )
            )
            self._next_id += 1
        return born

    def _snapshot(self, t_s: float) -> FrameTracks:
        confirmed: list[Track] = []
        tentative: list[Track] = []
        for t in self._tracks:
            x1, y1, x2, y2 = states_to_boxes(t.mean[None, :])[0]
            snap = Track(
                track_id=t.track_id,
                x1=float(x1),
                y1=float(y1),
                x2=float(x2),
                y2=float(y2),
                vx=float(t.mean[4]),
                vy=float(t.mean[5]),
                score=t.score,
                age=t.age,
                hits=t.hits,
                time_since_update=t.misses,
                lost_s=t_s - t.last_hit_s,
                confirmed=t.confirmed,
            )
            (confirmed if t.confirmed else tentative).append(snap)
        return FrameTracks(t_s=t_s, confirmed=tuple(confirmed), tentative=tuple(tentative))


def _associate(
    boxes: Array,
    dets: Array,
    track_idx: Sequence[int],
    det_idx: Sequence[int] | NDArray[np.intp],
    *,
    min_iou: float,
    fuse_score: bool,
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Optimal assignment of tracks to detections by IoU, gated at ``min_iou``.

    Returns matched (track, detection) index pairs and the unmatched track and
    detection indices, all as indices into the caller's arrays.
    """
    track_idx, det_idx = list(track_idx), [int(j) for j in det_idx]
    if not track_idx or not det_idx:
        return [], track_idx, det_idx
    iou = iou_matrix(boxes[track_idx], dets[det_idx, :4])
    similarity = iou * dets[det_idx, 4][None, :] if fuse_score else iou
    cost = np.where(iou >= min_iou, 1.0 - similarity, 1e6)
    rows, cols = linear_sum_assignment(cost)
    pairs = [
        (track_idx[r], det_idx[c]) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou
    ]
    used_t = {t for t, _ in pairs}
    used_d = {d for _, d in pairs}
    return (
        pairs,
        [t for t in track_idx if t not in used_t],
        [d for d in det_idx if d not in used_d],
    )
