"""The tracker's thresholds and track life cycle (``agent.vision.tracker`` says how
each stage uses them); a module of its own because every number here carries the
measurement or the reference it was chosen by."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.vision.kalman import MotionModel
from agent.vision.revival import Reach

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
    gap_gate: float = 9.49
    """Stage 4: tracks and high detections that no IoU stage paired are matched when the
    detection lies within this squared Mahalanobis distance of the track's prediction
    (9.49: 95 % of a 4-dimensional normal). IoU gates are fixed in pixels; when frames
    are sparse (a Pi analysing every 3rd or 5th one) or a person reappears after an
    occlusion, they have moved further than any box overlap, while the filter's
    uncertainty has grown with the gap, so this gate widens with it. 0 switches it off."""
    gap_max_s: float = 1.0
    """Stage 4 only takes tracks matched within this many seconds: it bridges sparse frames
    and short occlusions; after longer, the uncertainty is so wide that a coasting track
    would take whatever box turns up near it (the cone a walker passed 3 s before)."""
    proof_score: float = 0.6
    """A track shows it is a person when a detection matched to it scores this much
    (vtest's cones, rock and bollards never score above 0.5 with the bundled model) ..."""
    proof_foreground: float = 0.2
    """... or when the detection's box differs from the scene's slow background
    (``agent.vision.background``) over this share of its area: a person who walked in
    and stands half hidden behind a sign scores low and does not move, but was not
    there ten seconds ago; a cone was (vtest: cones 0.00–0.02, that man 0.19–0.38).
    Only detections scoring ``high_score`` or more: a low box beside a walker lies on
    the walker's pixels."""
    proof_foreground_s: float = 1.0
    """... the second time at least this long after the first (``Tracker._stands_out``)."""
    proof_move: float = 1.0
    """... or when its foot point is seen this many box heights away from where it last
    showed it."""
    proof_s: float = 5.0
    """A track is *proven* (``Track.proven``; only proven tracks are counted) for this many
    seconds after it last showed it is a person. Static things the detector half takes for
    people (traffic cones, a lectern, a bollard) score low and never move, so they are
    never counted, not even when a passer-by's track latches onto one; a person standing
    still scores high now and then, and a faint walker in the distance moves."""
    reach: Reach = field(default_factory=Reach)
    """Stage 5 (``agent.vision.revival``): how far a lost track looks for its person."""
    motion: MotionModel = field(default_factory=MotionModel)
    """Noise levels of the Kalman filter."""

    def __post_init__(self) -> None:
        if not 0 <= self.low_score <= self.high_score <= self.new_track_score:
            raise ValueError("need 0 <= low_score <= high_score <= new_track_score")
        if min(self.proof_move, self.proof_s, self.gap_gate, self.gap_max_s) < 0:
            raise ValueError("proof_move, proof_s, gap_gate and gap_max_s must be >= 0")
        if self.n_init < 1 or self.max_age < 0 or self.max_lost_s < 0:
            raise ValueError("n_init must be >= 1, max_age and max_lost_s >= 0")
