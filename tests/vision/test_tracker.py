"""ByteTrack tracker on synthetic trajectories: ids, occlusion, irregular time, life cycle."""

from dataclasses import dataclass

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from agent.vision import Detection
from agent.vision.geometry import iou_matrix
from agent.vision.revival import Reach
from agent.vision.tracker import (
    BoxLike,
    FrameTracks,
    Tracker,
    detections_array,
)
from agent.vision.tracker_config import TrackerConfig

NO_REVIVAL = Reach(speed=0.0)
"""Stage 5 off: the other stages alone."""

@dataclass(frozen=True)
class Walker:
    """A person walking at constant velocity; position is the foot point."""

    x0: float
    y0: float
    vx: float
    vy: float
    w: float = 50.0
    h: float = 120.0

    def box(self, t):
        cx, fy = self.x0 + self.vx * t, self.y0 + self.vy * t
        return np.array([cx - self.w / 2, fy - self.h, cx + self.w / 2, fy])


@dataclass(frozen=True)
class Det:
    """Stand-in for the detector's Detection (any object with these fields works)."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float


def ids_per_person(frames, walkers, times):
    """For each walker, the set of confirmed active track ids optimally matched to it."""
    seen = [set() for _ in walkers]
    for frame, t in zip(frames, times, strict=True):
        active = frame.active
        if not active:
            continue
        boxes = np.array([[a.x1, a.y1, a.x2, a.y2] for a in active])
        truth = np.array([w.box(t) for w in walkers])
        iou = iou_matrix(truth, boxes)
        for g, k in zip(*linear_sum_assignment(-iou), strict=True):
            if iou[g, k] >= 0.5:
                seen[g].add(active[k].track_id)
    return seen


def crossing_scene(seed):
    """Two people crossing paths; the farther one is hidden or scores low while overlapped."""
    rng = np.random.default_rng(seed)
    a = Walker(100.0, 300.0, 120.0, 0.0, 50.0, 120.0)
    b = Walker(520.0, 320.0, -120.0, 0.0, 55.0, 130.0)
    times = np.arange(0.0, 3.6, 0.1)
    frames = []
    tracker = Tracker()
    for t in times:
        ta, tb = a.box(t), b.box(t)
        overlap = iou_matrix(ta, tb)[0, 0]
        dets = []
        if rng.random() > 0.1:  # 10 % of detections are missed anyway
            score_a = 0.3 if overlap > 0.2 else 0.85
            if overlap < 0.5 or rng.random() < 0.5:  # deeply hidden: half the time no box
                dets.append([*(ta + rng.normal(0, 2.0, 4)), score_a])
        if rng.random() > 0.1:
            dets.append([*(tb + rng.normal(0, 2.0, 4)), 0.9])
        frames.append(tracker.update(np.array(dets).reshape(-1, 5), float(t)))
    return frames, [a, b], times


@pytest.mark.parametrize("seed", range(8))
def test_two_people_crossing_paths_keep_their_ids(seed):
    frames, walkers, times = crossing_scene(seed)
    seen = ids_per_person(frames, walkers, times)
    assert all(len(s) == 1 for s in seen), seen
    assert seen[0] != seen[1]
    # Both are still tracked at the end, and nothing else was ever confirmed.
    assert {t.track_id for t in frames[-1].confirmed} == seen[0] | seen[1]
    assert {t.track_id for f in frames for t in f.confirmed} == seen[0] | seen[1]


def occluded_run(config):
    """One walker whose detector score drops to 0.3 for 1 s (behind a lamp post)."""
    walker = Walker(100.0, 400.0, 60.0, 0.0)
    tracker = Tracker(config)
    frames = []
    for k in range(40):
        t = k * 0.1
        score = 0.3 if 10 <= k < 20 else 0.9
        frames.append(tracker.update(np.array([[*walker.box(t), score]]), t))
    return frames


def test_low_score_detections_keep_a_track_alive_through_occlusion():
    frames = occluded_run(TrackerConfig())
    ids = {t.track_id for f in frames[2:] for t in f.confirmed}
    assert ids == {1}
    # Stage 2 matched the low boxes: the track never even went lost.
    assert all(f.active and f.active[0].time_since_update == 0 for f in frames[2:])
    assert all(f.active[0].score == pytest.approx(0.3) for f in frames[10:20])


def test_without_the_second_stage_the_same_occlusion_breaks_the_track():
    no_byte = TrackerConfig(low_score=0.5, max_age=5)
    frames = occluded_run(no_byte)
    assert frames[12].confirmed[0].time_since_update == 3
    ids = {t.track_id for f in frames for t in f.confirmed}
    assert len(ids) == 2  # the first died in the gap; a new id after it


def test_low_score_detections_never_start_tracks():
    tracker = Tracker()
    for k in range(10):
        frame = tracker.update(np.array([[10, 10, 50, 110, 0.45], [200, 10, 240, 110, 0.55]]), k)
    assert frame.confirmed == ()
    assert frame.tentative == ()


def test_ids_stay_stable_with_irregular_time_steps():
    # 200 px/s with a 40 px wide box: over a 0.5 s gap the person moves 2.5
    # box widths, so only a prediction that uses the real dt still overlaps.
    rng = np.random.default_rng(5)
    walkers = [Walker(50.0, 300.0, 200.0, 10.0, 40.0, 100.0), Walker(700.0, 250.0, -150.0, 0.0)]
    times = np.cumsum(np.concatenate([[0.0], rng.choice([0.07, 0.1, 0.2, 0.3, 0.5], 30)]))
    times = times[times < 3.4]
    tracker = Tracker()
    frames = []
    for t in times:
        dets = [np.append(w.box(t) + rng.normal(0, 1.5, 4), 0.9) for w in walkers]
        frames.append(tracker.update(np.array(dets), float(t)))
    seen = ids_per_person(frames, walkers, times)
    assert [len(s) for s in seen] == [1, 1]
    first_x = walkers[0].box(times[-1])[[0, 2]].mean()
    (follower,) = [t for t in frames[-1].confirmed if abs((t.x1 + t.x2) / 2 - first_x) < 20]
    assert (follower.vx, follower.vy) == pytest.approx((200.0, 10.0), abs=15.0)


def test_a_lost_track_coasts_along_its_velocity_for_the_real_elapsed_time():
    walker = Walker(100.0, 300.0, 100.0, 0.0)
    tracker = Tracker()
    for k in range(15):
        tracker.update(np.array([[*walker.box(k * 0.1), 0.9]]), k * 0.1)
    frame = tracker.update(np.zeros((0, 5)), 2.4)  # 1 s without detections
    (track,) = frame.confirmed
    assert track.time_since_update == 1
    assert track.lost_s == pytest.approx(1.0)
    assert (track.x1 + track.x2) / 2 == pytest.approx(walker.box(2.4)[[0, 2]].mean(), abs=3.0)


def test_a_tentative_track_is_confirmed_after_n_init_hits_or_dropped_at_a_miss():
    box = np.array([[100.0, 100.0, 140.0, 200.0, 0.9]])
    none = np.zeros((0, 5))
    tracker = Tracker(TrackerConfig(n_init=3))
    tracker.update(none, 0.0)  # the first frame confirms at birth (below)
    f0 = tracker.update(box, 0.1)
    f1 = tracker.update(box, 0.2)
    assert f0.confirmed == f1.confirmed == ()
    assert [t.track_id for t in f1.tentative] == [1]
    assert [t.track_id for t in tracker.update(box, 0.3).confirmed] == [1]

    blip = Tracker(TrackerConfig(n_init=3))
    blip.update(none, 0.0)
    blip.update(box, 0.1)
    blip.update(box, 0.2)
    gone = blip.update(none, 0.3)
    assert gone.confirmed == gone.tentative == ()
    assert blip.update(box, 0.4).tentative[0].track_id == 2  # a new id, never reused


def test_n_init_one_confirms_at_birth():
    frame = Tracker(TrackerConfig(n_init=1)).update(np.array([[0, 0, 10, 30, 0.9]]), 0.0)
    assert [t.track_id for t in frame.confirmed] == [1]


def test_the_people_in_view_at_the_first_frame_are_confirmed_at_once():
    """As ByteTrack: no earlier frame to tell a blip by, and people already standing
    there when a counter starts (or is reset) count from its first frame, not its third."""
    boxes = np.array([[100.0, 100.0, 140.0, 200.0, 0.9], [300.0, 100.0, 340.0, 200.0, 0.9]])
    tracker = Tracker(TrackerConfig(n_init=3))
    assert [t.track_id for t in tracker.update(boxes, 0.0).confirmed] == [1, 2]
    newcomer = np.array([[500.0, 100.0, 540.0, 200.0, 0.9]])
    second = tracker.update(np.vstack([boxes, newcomer]), 0.1)
    assert [t.track_id for t in second.tentative] == [3]
    tracker.reset()
    assert [t.track_id for t in tracker.update(newcomer, 5.0).confirmed] == [4]


def test_lost_tracks_die_after_max_age_frames_or_max_lost_seconds():
    box = np.array([[100.0, 100.0, 140.0, 200.0, 0.9]])
    none = np.zeros((0, 5))
    tracker = Tracker(TrackerConfig(max_age=4, max_lost_s=10.0))
    for k in range(3):
        tracker.update(box, k * 0.1)
    alive = [tracker.update(none, 0.2 + k * 0.1).confirmed for k in range(1, 6)]
    assert [len(a) for a in alive] == [1, 1, 1, 1, 0]

    slow = Tracker(TrackerConfig(max_age=100, max_lost_s=1.0))
    for k in range(3):
        slow.update(box, k * 0.1)
    assert len(slow.update(none, 1.1).confirmed) == 1  # 0.9 s lost
    assert slow.update(none, 1.3).confirmed == ()  # 1.1 s lost


def test_array_and_object_detections_give_the_same_tracks():
    rows = np.array([[10, 20, 50, 140, 0.9, 0], [300, 40, 350, 160, 0.8, 0]], dtype=float)
    objects = [Det(*r[:5]) for r in rows]
    assert all(isinstance(o, BoxLike) for o in objects)
    a, b = Tracker(TrackerConfig(n_init=1)), Tracker(TrackerConfig(n_init=1))
    for k in range(3):
        fa: FrameTracks = a.update(rows + np.array([k, k, k, k, 0, 0]), k * 0.1)
        fb: FrameTracks = b.update(
            [Det(o.x1 + k, o.y1 + k, o.x2 + k, o.y2 + k, o.score) for o in objects], k * 0.1
        )
    assert fa == fb
    assert len(fa.confirmed) == 2


def test_bad_detections_are_dropped_and_bad_input_refused():
    arr = detections_array(
        np.array([[0, 0, 10, 10, 0.9], [5, 5, 5, 20, 0.9], [0, 0, np.nan, 10, 0.9]])
    )
    assert arr.shape == (1, 6) and arr[0, 5] == 0.0  # no foreground column: share 0
    assert detections_array([]).shape == (0, 6)
    assert detections_array([Det(0.0, 0.0, 10.0, 20.0, 0.5)]).shape == (1, 6)
    with pytest.raises(ValueError):
        detections_array(np.zeros((3, 4)))
    tracker = Tracker()
    tracker.update([], 1.0)
    with pytest.raises(ValueError):
        tracker.update([], 1.0)  # time must move forward
    with pytest.raises(ValueError):
        TrackerConfig(low_score=0.6, high_score=0.5)


def test_reset_forgets_tracks_but_not_the_id_counter():
    tracker = Tracker(TrackerConfig(n_init=1))
    tracker.update(np.array([[0, 0, 10, 30, 0.9]]), 0.0)
    tracker.reset()
    frame = tracker.update(np.array([[0, 0, 10, 30, 0.9]]), 0.0)
    assert [t.track_id for t in frame.confirmed] == [2]


def hidden_box_scene(config):
    """A passes behind B; A is missed for a frame, then B is missed while A scores low."""
    a = Walker(100.0, 300.0, 120.0, 0.0, 50.0, 120.0)
    b = Walker(364.0, 320.0, -120.0, 0.0, 55.0, 130.0)
    tracker = Tracker(config)
    for k in range(12):
        t = k * 0.1
        dets = []
        if k != 10:
            dets.append([*a.box(t), 0.3 if k == 11 else 0.9])
        if k != 11:
            dets.append([*b.box(t), 0.9])
        frame = tracker.update(np.array(dets), t)
    return {tr.track_id: tr for tr in frame.confirmed}


def test_a_hidden_persons_low_box_goes_to_their_own_lost_track():
    tracks = hidden_box_scene(TrackerConfig())
    assert (tracks[1].time_since_update, tracks[2].time_since_update) == (0, 1)
    assert tracks[1].score == pytest.approx(0.3)
    # ByteTrack proper offers the low box only to B's track (tracked last
    # frame), which takes it: A's box is now on B's id.
    proper = hidden_box_scene(TrackerConfig(low_match_lost=False))
    assert (proper[1].time_since_update, proper[2].time_since_update) == (2, 0)
    assert proper[2].score == pytest.approx(0.3)


def test_the_detectors_detection_type_is_accepted_as_is():
    tracker = Tracker(TrackerConfig(n_init=2))
    tracker.update([Detection(10.0, 20.0, 50.0, 140.0, 0.9)], 0.0)
    frame = tracker.update([Detection(12.0, 20.0, 52.0, 140.0, 0.8)], 0.1)
    assert isinstance(Detection(0, 0, 1, 1, 0.5), BoxLike)
    assert [(t.track_id, t.score) for t in frame.confirmed] == [(1, 0.8)]


@pytest.mark.parametrize(("reference_dt_s", "confirmed"), [(0.1, True), (1.0, False)])
def test_at_a_low_frame_rate_a_new_person_is_still_confirmed(reference_dt_s: float,
                                                            confirmed: bool) -> None:
    """Every 3rd frame of a 10 fps camera: 100 px/s moves a 50 px box 30 px between
    analysed frames (IoU 0.25 with the unmoved tentative box, under the 0.3 gate). The
    distance stage is off here, to show the IoU gate alone."""
    walker = Walker(100.0, 300.0, 100.0, 0.0)
    tracker = Tracker(TrackerConfig(reference_dt_s=reference_dt_s, gap_gate=0.0))
    tracker.update(np.zeros((0, 5)), -0.3)  # the walker comes after the first frame
    for k in range(4):
        frame = tracker.update(np.array([[*walker.box(k * 0.3), 0.9]]), k * 0.3)
    assert bool(frame.confirmed) is confirmed


@pytest.mark.parametrize(("gap_s", "confirmed"), [(0.1, False), (0.3, True)])
def test_two_hits_far_enough_apart_confirm_a_track(gap_s: float, confirmed: bool) -> None:
    """At 10 fps a two-frame blip stays tentative; at a Pi's 3 fps two hits are a person."""
    walker = Walker(100.0, 300.0, 20.0, 0.0)
    tracker = Tracker()
    tracker.update(np.zeros((0, 5)), -gap_s)  # the walker comes after the first frame
    tracker.update(np.array([[*walker.box(0.0), 0.9]]), 0.0)
    frame = tracker.update(np.array([[*walker.box(gap_s), 0.9]]), gap_s)
    assert bool(frame.confirmed) is confirmed


def subsampled_walk(walker, stride, *, frames=40, fps=10.0, score=0.9, config=None):
    """A walker seen at every ``stride``-th frame of a ``fps`` camera, coming in after the
    first; the tracker's output."""
    tracker = Tracker(config)
    tracker.update(np.zeros((0, 5)), -stride / fps)
    out = []
    for k in range(0, frames, stride):
        t = k / fps
        out.append(tracker.update(np.array([[*walker.box(t), score]]), t))
    return out


@pytest.mark.parametrize("stride", [3, 5])
def test_at_a_pis_frame_rate_a_walker_keeps_one_track(stride: int) -> None:
    """Every 5th frame: 150 px/s moves a 50 px box 75 px between analysed frames, no
    overlap at all; the distance stage follows the filter's grown uncertainty."""
    walker = Walker(100.0, 300.0, 150.0, 0.0)
    frames = subsampled_walk(walker, stride)
    ids = {t.track_id for f in frames for t in f.confirmed}
    assert ids == {1}
    assert frames[-1].active and frames[2].active
    cut = subsampled_walk(walker, stride, config=TrackerConfig(gap_gate=0.0))
    assert len({t.track_id for f in cut for t in (*f.confirmed, *f.tentative)}) > 1


def test_after_an_occlusion_the_person_gets_their_track_back() -> None:
    """Hidden for 0.8 s, a 30 px wide walker reappears slowed down, 25 px behind the
    prediction (IoU 0.09): no IoU stage pairs them, the distance stage does."""
    walker = Walker(100.0, 300.0, 100.0, 0.0, 30.0, 80.0)
    late = walker.box(1.8) - [25.0, 0.0, 25.0, 0.0]

    def reappear(config: TrackerConfig) -> FrameTracks:
        tracker = Tracker(config)
        for k in range(10):
            tracker.update(np.array([[*walker.box(k * 0.1), 0.9]]), k * 0.1)
        for k in range(10, 18):
            tracker.update(np.zeros((0, 5)), k * 0.1)
        return tracker.update(np.array([[*late, 0.9]]), 1.8)

    frame = reappear(TrackerConfig())
    assert [(t.track_id, t.time_since_update) for t in frame.confirmed] == [(1, 0)]
    assert frame.tentative == ()
    # IoU alone (without the distance stage, and without stage 5, which would take the
    # walker back by where they were last seen): a new track
    assert reappear(TrackerConfig(gap_gate=0.0, reach=Reach(speed=0.0))).tentative


def test_the_distance_stage_bridges_only_short_gaps_and_like_sized_boxes() -> None:
    walker = Walker(100.0, 300.0, 0.0, 0.0)  # 50 x 120 px, standing still

    def seen_then(box: list[float], t_s: float, reach: Reach = NO_REVIVAL) -> FrameTracks:
        tracker = Tracker(TrackerConfig(max_age=100, max_lost_s=10.0, reach=reach))
        for k in range(5):
            tracker.update(np.array([[*walker.box(k * 0.1), 0.9]]), k * 0.1)
        return tracker.update(np.array([[*box, 0.9]]), t_s)

    aside = list(walker.box(0.0) + np.array([45.0, 0.0, 45.0, 0.0]))  # IoU 0.05 with theirs
    assert seen_then(aside, 1.4).active[0].track_id == 1  # lost 1.0 s: bridged
    stale = seen_then(aside, 2.4)  # lost 2.0 s, over gap_max_s (and well within the gate)
    assert stale.active == () and stale.tentative
    # ... which stage 5 bridges: 45 px from where they were last seen, 2 s later
    assert seen_then(aside, 2.4, Reach()).active[0].track_id == 1
    cone = [85.0, 265.0, 115.0, 305.0]  # a third of the person's height, right at their feet
    for reach in (NO_REVIVAL, Reach()):
        small = seen_then(cone, 0.9, reach)
        assert small.active == () and small.tentative


def test_a_static_low_scoring_box_is_tracked_but_never_proven() -> None:
    """A traffic cone at 0.45 for 20 s: a confirmed track that never counts."""
    config = TrackerConfig(high_score=0.4, new_track_score=0.4)
    frames = subsampled_walk(Walker(300.0, 200.0, 0.0, 0.0, 20.0, 25.0), 1, frames=200,
                             score=0.45, config=config)
    assert frames[-1].confirmed and frames[3].confirmed
    assert not any(t.proven for f in frames for t in f.confirmed)


def test_a_person_standing_still_is_proven_by_a_confident_detection() -> None:
    config = TrackerConfig(high_score=0.4, new_track_score=0.4)
    frames = subsampled_walk(Walker(300.0, 200.0, 0.0, 0.0), 1, frames=50, score=0.7,
                             config=config)
    assert all(t.proven for f in frames for t in f.confirmed)


def test_a_faint_walker_is_proven_once_they_have_moved_a_body_height() -> None:
    """A distant walker scoring 0.45 (below proof_score), 30 px tall, 15 px/s: proven after
    moving 30 px, i.e. from 2 s on."""
    config = TrackerConfig(high_score=0.4, new_track_score=0.4)
    walker = Walker(300.0, 200.0, 15.0, 0.0, 12.0, 30.0)
    frames = subsampled_walk(walker, 1, score=0.45, config=config)
    proven = [bool(f.confirmed and f.confirmed[0].proven) for f in frames]
    assert proven.index(True) == pytest.approx(20, abs=1)
    assert all(proven[21:])


def test_a_track_that_latched_onto_a_static_thing_stops_counting_after_proof_s() -> None:
    """A person's track (proven) ends up on a cone-like box that scores 0.45 and never
    moves: proven for proof_s more seconds, then no longer."""
    config = TrackerConfig(high_score=0.4, new_track_score=0.4, proof_s=2.0, max_age=1000,
                           max_lost_s=100.0)
    tracker = Tracker(config)
    box = np.array([[100.0, 200.0, 130.0, 280.0]])
    frames = [tracker.update(np.column_stack([box, [0.9 if k < 5 else 0.45]]), k * 0.1)
              for k in range(60)]
    proven = {k: f.confirmed[0].proven for k, f in enumerate(frames) if f.confirmed}
    assert all(proven[k] for k in range(3, 24))  # last confident hit at 0.4 s, + 2 s
    assert not any(proven[k] for k in range(25, 60))


@pytest.mark.parametrize(("later", "proven"), [
    ((0.45, 0.0), False),  # a cone: there from the start, part of the background
    ((0.45, 0.3), True),  # someone who walked in and stands behind a sign, fidgeting
    ((0.3, 0.9), False),  # a low box on a walker's pixels: foreground, but not sure enough
])
def test_a_sure_box_new_in_the_scene_proves_a_person_who_stands_still(
        later: tuple[float, float], proven: bool) -> None:
    """The sixth column, the box's foreground share (agent.vision.background), is the third
    way to show a person: a static box scoring below proof_score is proven by it when it
    differs from the background, the detector is sure enough (high_score), and it still does
    proof_foreground_s (1 s) after it first did."""
    tracker = Tracker(TrackerConfig(high_score=0.4, low_score=0.2, new_track_score=0.4))
    box = [300.0, 200.0, 325.0, 280.0]
    frames = [tracker.update(np.array([[*box, *((0.45, 0.0) if k < 3 else later)]]), k * 0.1)
              for k in range(100)]
    assert frames[-1].confirmed
    assert not any(t.proven for f in frames[:13] for t in f.confirmed)
    assert all(t.proven is proven for f in frames[13:] for t in f.confirmed)


def test_a_box_that_stands_out_only_briefly_proves_nothing() -> None:
    """A second box on part of a walker stands out from the background for a frame or two,
    then is gone or matched no more: not proof of another person; nor is a cone's box that
    a passer-by brushes now and then (more than proof_s apart)."""
    tracker = Tracker(TrackerConfig(high_score=0.4, low_score=0.2, new_track_score=0.4,
                                    max_age=1000, max_lost_s=100.0))
    box = [300.0, 200.0, 325.0, 280.0]
    shares = [0.5 if k in (3, 4, 5, 90) else 0.0 for k in range(100)]  # 8.7 s apart
    frames = [tracker.update(np.array([[*box, 0.45, share]]), k * 0.1)
              for k, share in enumerate(shares)]
    assert frames[-1].confirmed
    assert not any(t.proven for f in frames for t in f.confirmed)
