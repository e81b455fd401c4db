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
6. Stage 4: tracks matched within the last ``gap_max_s`` seconds and still
   unmatched ↔ the remaining high detections, by the squared Mahalanobis
   distance of the detected box from the track's prediction (gated at
   ``gap_gate``). IoU gates are fixed in pixels; the filter's uncertainty grows
   with the time since a track was last seen, so this stage bridges what IoU
   cannot: sparse frames (a Raspberry Pi analysing every 3rd or 5th frame, when
   a walker moves more than a box width between them) and a person reappearing
   off their predicted path after a short occlusion.
7. Stage 5: lost confirmed tracks ↔ the high detections still unmatched that
   could start a track, by where each track was last *seen* and how far a
   person walks in the time since (``agent.vision.revival``): re-association
   after an occlusion that left the prediction far off.
8. Unmatched high detections scoring ≥ ``new_track_score`` start tentative
   tracks. A tentative track is confirmed after ``n_init`` consecutive hits (or two
   hits ``confirm_s`` apart, at low frame rates) and
   deleted at its first miss, so one-frame false positives never get an id
   that a counter could see. Only the tracks of the first frame after a start
   or reset are confirmed at birth, as in ByteTrack.
9. A confirmed track that misses is *lost* (coasts on its prediction) and is
   deleted after more than ``max_age`` frames or ``max_lost_s`` seconds without a
   hit, whichever comes first: frames bound the work when the detector keeps
   up, seconds bound the extrapolation when frames are sparse.
10. A track is *proven* (``Track.proven``) while it has shown within the last
   ``proof_s`` seconds that it is a person: a matched detection scoring
   ``proof_score``, or sure ones whose boxes differ from the scene's slow
   background over ``proof_foreground`` of their area at least
   ``proof_foreground_s`` apart (``agent.vision.background``: something that was
   not there a while ago and stays), or its foot point seen ``proof_move`` box
   heights from where it last showed it. The counters count proven tracks only: a traffic cone
   that the detector scores 0.45 in every frame becomes a confirmed track (it
   must, or it would start a new one every frame) but never a person.

Ids are positive integers handed out in order of birth and never reused;
tentative tracks that die leave gaps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from agent.vision.geometry import Point, foot_point
from agent.vision.iou_match import match_by_iou
from agent.vision.kalman import boxes_to_measurements, states_to_boxes
from agent.vision.revival import revive
from agent.vision.tracker_config import MIN_TENTATIVE_GATE, TrackerConfig

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
    proven: bool = True
    """Recently seen to be a person, not a static look-alike (``TrackerConfig.proof_s``)."""

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
        return tuple([t for t in self.confirmed if t.time_since_update == 0])


@dataclass(slots=True, eq=False)
class _State:
    """Mutable per-track bookkeeping; the filter state lives beside it."""

    track_id: int
    mean: Array
    cov: Array
    score: float
    last_hit_s: float
    born_s: float
    anchor: Point
    """Foot point where the track last showed it is a person (or was born)."""
    shown_s: float
    """When it last did (-inf: never)."""
    seen: Point
    """Foot point of the last matched detection."""
    seen_h: float
    """Height of the last matched detection's box."""
    stood_out_s: float = math.inf
    """When a sure detection of it began to stand out from the background (inf: never)..."""
    stood_out_last_s: float = -math.inf
    """... and when one last did: a run of them ends after ``proof_s`` without."""
    age: int = 1
    hits: int = 1
    misses: int = 0
    confirmed: bool = False


def detections_array(detections: Detections) -> Array:
    """Detections as an (N, 6) float array; non-finite and empty boxes are dropped.

    Columns x1, y1, x2, y2, score and the share of the box that differs from the
    scene's background (``agent.vision.background``): an array's sixth column, or 0
    when it has none (a sequence of boxes, or no background kept).
    """
    if isinstance(detections, np.ndarray):
        arr = np.asarray(detections, dtype=np.float64)
        if arr.size == 0:
            return np.zeros((0, 6))
        if arr.ndim != 2 or arr.shape[1] < 5:
            raise ValueError("a detection array needs shape (N, >=5): x1, y1, x2, y2, score")
        if arr.shape[1] == 5:
            arr = np.hstack([arr, np.zeros((len(arr), 1))])
        arr = arr[:, :6]
    else:
        arr = np.array(
            [(d.x1, d.y1, d.x2, d.y2, d.score, 0.0) for d in detections], dtype=np.float64
        ).reshape(-1, 6)
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
        previous, self._last_t = self._last_t, t_s
        dt = 0.0 if previous is None else t_s - previous
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

        pairs1, rest_t, rest_high = match_by_iou(
            boxes, dets, confirmed, high, min_iou=cfg.match_iou, fuse_score=cfg.fuse_score
        )
        if not cfg.low_match_lost:
            rest_t = [i for i in rest_t if tracks[i].misses == 0]
        pairs2, _, _ = match_by_iou(
            boxes, dets, rest_t, low, min_iou=cfg.low_match_iou, fuse_score=False
        )
        pairs3, _, unmatched_high = match_by_iou(
            boxes, dets, tentative, rest_high,
            min_iou=cfg.tentative_match_iou * self._tentative_gate(dt), fuse_score=False
        )
        matched = pairs1 + pairs2 + pairs3
        if cfg.gap_gate > 0:
            taken = {i for i, _ in matched}
            recent = [i for i, t in enumerate(tracks)
                      if i not in taken and t_s - t.last_hit_s <= cfg.gap_max_s]
            pairs4, _, unmatched_high = self._associate_by_distance(recent, unmatched_high, dets)
            matched += pairs4
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
        unmatched_high = self._revive(survivors, unmatched_high, dets, t_s)
        births = [j for j in unmatched_high if dets[j, 4] >= cfg.new_track_score]
        survivors.extend(self._birth(dets[births], t_s, confirmed=previous is None))
        self._tracks = survivors
        return self._snapshot(t_s)

    def _associate_by_distance(
        self, track_idx: list[int], det_idx: list[int], dets: Array
    ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        """Stage 4: what IoU left apart, matched within the filter's own uncertainty."""
        if not track_idx or not det_idx:
            return [], track_idx, det_idx
        tracks = [self._tracks[i] for i in track_idx]
        d2 = self.config.motion.distance(
            np.array([t.mean for t in tracks]), np.array([t.cov for t in tracks]),
            boxes_to_measurements(dets[det_idx, :4]))
        ok = d2 <= self.config.gap_gate
        rows, cols = linear_sum_assignment(np.where(ok, d2, 1e9))
        pairs = [(track_idx[r], det_idx[c]) for r, c in zip(rows, cols, strict=True) if ok[r, c]]
        used_t, used_d = {t for t, _ in pairs}, {d for _, d in pairs}
        return (pairs, [t for t in track_idx if t not in used_t],
                [d for d in det_idx if d not in used_d])

    def _revive(self, tracks: list[_State], det_idx: list[int], dets: Array,
                t_s: float) -> list[int]:
        """Stage 5: lost tracks take back reappearing people; the detections left over."""
        lost = [t for t in tracks if t.confirmed and t.misses > 0]
        able = [j for j in det_idx if dets[j, 4] >= self.config.new_track_score]
        if not lost or not able:
            return det_idx
        pairs = revive(np.array([t.seen for t in lost]), np.array([t.seen_h for t in lost]),
                       np.array([t_s - t.last_hit_s for t in lost]), dets[able],
                       self.config.reach)
        if not pairs:
            return det_idx
        # The prediction went astray (that is why no other stage matched): start the filter
        # afresh at the detection, as for a new track, keeping the id and its history.
        rows = dets[[able[c] for _, c in pairs]]
        mean, cov = self.config.motion.initiate(boxes_to_measurements(rows[:, :4]))
        for (r, _), m, c, row in zip(pairs, mean, cov, rows, strict=True):
            track = lost[r]
            track.mean, track.cov, track.misses = m, c, 0
            self._hit(track, row, t_s, moved=False)
        taken = {able[c] for _, c in pairs}
        return [j for j in det_idx if j not in taken]

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
        cfg = self.config
        tracks = [self._tracks[i] for i, _ in matched]
        rows = dets[[j for _, j in matched]]
        mean, cov = cfg.motion.update(
            np.array([t.mean for t in tracks]),
            np.array([t.cov for t in tracks]),
            boxes_to_measurements(rows[:, :4]),
        )
        for t, m, c, row in zip(tracks, mean, cov, rows, strict=True):
            t.mean, t.cov = m, c
            if t.misses > 0:
                t.misses = 0
            elif not t.confirmed and (t.hits + 1 >= cfg.n_init or t_s - t.born_s >= cfg.confirm_s):
                t.confirmed = True
            self._hit(t, row, t_s)

    def _hit(self, t: _State, row: Array, t_s: float, *, moved: bool = True) -> None:
        """Book a matched detection: score, time, where seen, and whether it proves a person.

        ``moved=False`` for a revival (stage 5): the track is taken back off its prediction,
        maybe by something else than the person it lost, so it must prove again that it
        is one, and walking counts from there. On vtest a walker who left at the left
        border was revived 1.5 s later on a bollard 60 px away (score 0.41): keeping the
        walker's proof counted the bollard for 5 s, and measuring the walk from before
        the jump proved it a person again.
        """
        t.score, t.last_hit_s = float(row[4]), t_s
        t.hits += 1
        foot = foot_point(*row[:4])
        t.seen, t.seen_h = foot, float(row[3] - row[1])
        walked = moved and math.dist(foot, t.anchor) >= self.config.proof_move * t.seen_h
        if row[4] >= self.config.proof_score or walked or self._stands_out(t, row, t_s):
            t.anchor, t.shown_s = foot, t_s
        elif not moved:
            t.anchor, t.shown_s = foot, -math.inf

    def _stands_out(self, t: _State, row: Array, t_s: float) -> bool:
        """Whether a sure detection that stands out from the background proves a person: only
        when one of this track already did ``proof_foreground_s`` before. A person who walked
        in and stays does so for seconds; a second box on part of a walker (NMS leaves one
        now and then) stands out too, but for a frame or two."""
        cfg = self.config
        if row[4] < cfg.high_score or row[5] < cfg.proof_foreground:
            return False
        if t_s - t.stood_out_last_s > cfg.proof_s:  # two passers-by 30 s apart are no run
            t.stood_out_s = t_s
        t.stood_out_last_s = t_s
        return t_s - t.stood_out_s >= cfg.proof_foreground_s

    def _birth(self, rows: Array, t_s: float, *, confirmed: bool = False) -> list[_State]:
        """New tracks, tentative unless ``confirmed``: in the first frame after a start or
        reset (as ByteTrack does) there is no earlier frame a false positive could be told
        from, and the people standing in view when a counter starts would otherwise count
        only from its third frame (on vtest's first frame: 0 of 3)."""
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
                    anchor=foot_point(*row[:4]),
                    shown_s=t_s if row[4] >= self.config.proof_score else -math.inf,
                    seen=foot_point(*row[:4]),
                    seen_h=float(row[3] - row[1]),
                    confirmed=confirmed or self.config.n_init <= 1,
                )
            )
            self._stands_out(born[-1], row, t_s)
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
                proven=t_s - t.shown_s <= self.config.proof_s,
            )
            (confirmed if t.confirmed else tentative).append(snap)
        return FrameTracks(t_s=t_s, confirmed=tuple(confirmed), tentative=tuple(tentative))
