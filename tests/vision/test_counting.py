"""Line crossings with hysteresis and segment limits, zone occupancy and density alerts."""

import numpy as np
import pytest

from agent.vision.counting import (
    CountingLine,
    Direction,
    SceneCounter,
    Zone,
)
from agent.vision.tracker import FrameTracks, Track, Tracker
from agent.vision.tracker_config import TrackerConfig

IN, OUT = Direction.IN, Direction.OUT
# Pointing right on screen, so its right-hand side is *below* it: walking
# down the frame over it is "in".
DOOR = CountingLine("door", (0.0, 100.0), (200.0, 100.0), band_px=20.0)


def trk(track_id, x, y, *, confirmed=True, tsu=0, w=40.0, h=100.0, proven=True):
    """A track whose foot point is (x, y)."""
    return Track(
        track_id, x - w / 2, y - h, x + w / 2, y, 0.0, 0.0, 0.9, 1, 1, tsu, tsu * 0.1, confirmed,
        proven,
    )


def frame(t, *tracks):
    return FrameTracks(
        t,
        confirmed=tuple(x for x in tracks if x.confirmed),
        tentative=tuple(x for x in tracks if not x.confirmed),
    )


def feed(counter, steps):
    """Feed frames 0.1 s apart; each step is a list of tracks. Returns all crossings."""
    out = []
    for k, tracks in enumerate(steps):
        out.extend(counter.update(frame(k * 0.1, *tracks)).crossings)
    return out


def walk(track_id, points, **kw):
    return [[trk(track_id, x, y, **kw)] for x, y in points]


def directions(crossings):
    return [c.direction for c in crossings]


def test_walking_over_the_line_counts_in_one_way_and_out_the_other():
    counter = SceneCounter([DOOR])
    down = feed(counter, walk(1, [(100, 50), (100, 80), (100, 120), (100, 150)]))
    assert [(c.line, c.track_id, c.direction, c.t_s) for c in down] == [
        ("door", 1, IN, pytest.approx(0.2))
    ]
    up = feed(SceneCounter([DOOR]), walk(2, [(100, 150), (100, 120), (100, 60)]))
    assert directions(up) == [OUT]


def test_in_is_left_to_right_of_the_line_direction():
    # Pointing down the frame: a walker along it faces the viewer, so its
    # right is the screen's left; moving right-to-left on screen is "in".
    line = CountingLine("kerb", (100.0, 0.0), (100.0, 200.0), band_px=10.0)
    assert directions(feed(SceneCounter([line]), walk(1, [(150, 100), (50, 100)]))) == [IN]
    reverse = CountingLine("kerb", (100.0, 200.0), (100.0, 0.0), band_px=10.0)
    assert directions(feed(SceneCounter([reverse]), walk(1, [(150, 100), (50, 100)]))) == [OUT]


def test_dithering_on_the_line_counts_once():
    ys = [50, 95, 105, 97, 103, 92, 108, 99, 101, 112, 95, 112, 104, 150]
    crossings = feed(SceneCounter([DOOR]), walk(1, [(100, y) for y in ys]))
    assert directions(crossings) == [IN]
    # Without a band every sign change would have been a crossing.
    no_band = CountingLine("door", DOOR.start, DOOR.end, band_px=0.0)
    chatter = feed(SceneCounter([no_band]), walk(1, [(100, y) for y in ys]))
    assert directions(chatter) == [IN, OUT] * 4 + [IN]


def test_ending_inside_the_band_does_not_count():
    assert feed(SceneCounter([DOOR]), walk(1, [(100, 50), (100, 98), (100, 108)])) == []


def test_crossing_back_and_forth_counts_in_out_in():
    steps = walk(1, [(100, 50), (100, 150), (100, 140), (100, 50), (100, 150)])
    assert directions(feed(SceneCounter([DOOR]), steps)) == [IN, OUT, IN]


def test_crossings_beyond_the_segment_do_not_count():
    assert feed(SceneCounter([DOOR]), walk(1, [(250, 50), (250, 150)])) == []
    # Diagonal: the path meets the line at x = 205, past the end at 200.
    assert feed(SceneCounter([DOOR]), walk(1, [(180, 50), (230, 150)])) == []
    # ... at x = 195: inside. At x = 200 exactly: on the end point, counts.
    assert len(feed(SceneCounter([DOOR]), walk(1, [(170, 50), (220, 150)]))) == 1
    assert len(feed(SceneCounter([DOOR]), walk(1, [(175, 50), (225, 150)]))) == 1
    # The position of the *last* zero crossing decides: dither over the line
    # inside the segment, slip along it inside the band, step over past its end.
    path = [(150, 50), (150, 95), (150, 104), (150, 96), (260, 98), (260, 140)]
    assert feed(SceneCounter([DOOR]), walk(1, path)) == []


def test_an_id_switch_in_the_band_adds_no_count():
    # The same person with one id counts once ...
    ys = [50, 70, 95, 103, 130, 150]
    assert len(feed(SceneCounter([DOOR]), walk(1, [(100, y) for y in ys]))) == 1
    # ... but if the tracker swaps ids inside the band, neither id has seen
    # both sides: the passage is lost rather than counted twice.
    steps = walk(1, [(100, y) for y in ys[:3]]) + walk(2, [(100, y) for y in ys[3:]])
    assert feed(SceneCounter([DOOR]), steps) == []
    # A string of short-lived ids each crossing zero inside the band: nothing.
    flicker = [[trk(3, 100, 50)], [trk(3, 100, 97)], [trk(4, 100, 103)], [trk(4, 100, 96)]]
    flicker += [[trk(5, 100, 104)], [trk(5, 100, 99)], [trk(6, 100, 102)], [trk(6, 100, 150)]]
    assert feed(SceneCounter([DOOR]), flicker) == []


def test_a_track_born_in_the_band_counts_after_visiting_the_near_side():
    steps = walk(7, [(100, 98), (100, 85), (100, 60), (100, 104), (100, 140)])
    assert directions(feed(SceneCounter([DOOR]), steps)) == [IN]


def test_the_same_direction_never_counts_twice_in_a_row():
    # In, then back round the end of the line (no "out": outside the
    # segment), then in again: the second "in" is not counted.
    path = [(100, 50), (100, 150), (250, 150), (250, 50), (100, 50), (100, 150)]
    assert directions(feed(SceneCounter([DOOR]), walk(1, path))) == [IN]


def test_a_tentative_track_that_never_confirms_is_never_counted():
    steps = walk(1, [(100, 50), (100, 150), (100, 160)], confirmed=False) + [[]] * 3
    assert feed(SceneCounter([DOOR]), steps) == []


def test_a_crossing_made_while_tentative_counts_when_confirmed():
    steps = walk(1, [(100, 50), (100, 150)], confirmed=False)
    steps += walk(1, [(100, 160), (100, 170)])
    crossings = feed(SceneCounter([DOOR]), steps)
    assert [(c.direction, c.t_s) for c in crossings] == [(IN, pytest.approx(0.2))]


def test_coasting_predictions_do_not_cross_lines():
    steps = [[trk(1, 100, 50)], [trk(1, 100, 150, tsu=1)], [trk(1, 100, 60)]]
    assert feed(SceneCounter([DOOR]), steps) == []


def test_each_line_counts_independently():
    other = CountingLine("gate", (0.0, 300.0), (200.0, 300.0), band_px=20.0)
    crossings = feed(SceneCounter([DOOR, other]), walk(1, [(100, 50), (100, 200), (100, 350)]))
    assert [(c.line, c.direction) for c in crossings] == [("door", IN), ("gate", IN)]


SQUARE = ((0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0))


def test_zone_and_whole_frame_occupancy():
    zone = Zone("plein", SQUARE, area_m2=20.0)
    counter = SceneCounter([], [zone])
    counts = counter.update(
        frame(
            0.0,
            trk(1, 50, 50),
            trk(2, 50, 99),
            trk(3, 150, 50),  # outside the zone
            trk(4, 50, 150 - 60, h=30),  # foot at y = 90: inside
            trk(5, 20, 20, confirmed=False),  # tentative: nobody yet
            trk(6, 30, 30, tsu=2),  # lost for 0.2 s
        )
    )
    (occ,) = counts.zones
    assert (occ.zone, occ.count, occ.density) == ("plein", 3, pytest.approx(3 / 20))
    assert counts.occupancy == 4
    # With a coasting allowance the briefly hidden person still counts.
    coasting = SceneCounter([], [zone], coast_s=0.5).update(frame(0.0, trk(6, 30, 30, tsu=2)))
    assert (coasting.zones[0].count, coasting.occupancy) == (1, 1)
    assert Zone("z", SQUARE).area_m2 is None
    assert SceneCounter([], [Zone("z", SQUARE)]).update(frame(0.0)).zones[0].density is None


def test_density_alerts_switch_with_hysteresis_and_at_once():
    zone = Zone("plein", SQUARE, area_m2=10.0, density_on=0.3, density_off=0.1)
    counter = SceneCounter([], [zone])
    people = [0, 1, 2, 3, 4, 2, 3, 2, 1, 2, 3]
    alerts = []
    for k, n in enumerate(people):
        counts = counter.update(frame(k * 1.0, *[trk(i + 1, 10 + 10 * i, 50) for i in range(n)]))
        alerts.extend(counts.alerts)
    # On at 0.3 (t = 3), held through 0.2, off at 0.1 (t = 8), on again at 0.3.
    assert [(a.t_s, a.on, a.density) for a in alerts] == [
        (3.0, True, pytest.approx(0.3)),
        (8.0, False, pytest.approx(0.1)),
        (10.0, True, pytest.approx(0.3)),
    ]
    assert all(a.zone == "plein" for a in alerts)


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError):
        CountingLine("x", (1.0, 1.0), (1.0, 1.0), band_px=16.0)
    with pytest.raises(ValueError):
        CountingLine("x", (0.0, 0.0), (1.0, 1.0), band_px=-1)
    with pytest.raises(ValueError):
        Zone("z", SQUARE[:2])
    with pytest.raises(ValueError):
        Zone("z", SQUARE, density_on=1.0, density_off=0.5)  # no area
    with pytest.raises(ValueError):
        Zone("z", SQUARE, area_m2=5.0, density_on=1.0)  # no off threshold
    with pytest.raises(ValueError):
        Zone("z", SQUARE, area_m2=5.0, density_on=1.0, density_off=1.0)
    with pytest.raises(ValueError):
        SceneCounter([DOOR], [Zone("door", SQUARE)])


def test_tracker_and_counter_together_count_a_noisy_crowd():
    # Twelve people cross a 600 px line at 10 FPS, eight going down ("in") and
    # four going up ("out"), with detector jitter, 10 % missed boxes and
    # dropped frames; a few stray one-frame false positives on the line.
    rng = np.random.default_rng(21)
    line = CountingLine("street", (50.0, 300.0), (650.0, 300.0), band_px=30.0)
    people = []
    for k in range(12):
        down = k % 3 != 2
        x = 80.0 + 45.0 * k
        people.append((x, 120.0 if down else 480.0, 90.0 if down else -90.0, 0.6 * k))
    tracker, counter = Tracker(), SceneCounter([line])
    crossings = []
    t = 0.0
    while t < 12.0:
        dets = []
        for x, y0, vy, start in people:
            if not start <= t <= start + 4.0 or rng.random() < 0.1:
                continue
            fy = y0 + vy * (t - start)
            box = np.array([x - 22, fy - 110, x + 22, fy]) + rng.normal(0, 2.0, 4)
            dets.append([*box, rng.uniform(0.6, 0.95)])
        if rng.random() < 0.05:
            fx = rng.uniform(60, 640)
            dets.append([fx - 20, 200, fx + 20, 305, 0.7])
        crossings.extend(counter.update(tracker.update(np.array(dets).reshape(-1, 5), t)).crossings)
        t += 0.1 if rng.random() > 0.2 else 0.3  # the detector sometimes falls behind
    assert sum(c.direction is IN for c in crossings) == 8
    assert sum(c.direction is OUT for c in crossings) == 4


def test_with_the_real_tracker_a_two_frame_blip_over_the_line_is_never_counted():
    line = CountingLine("street", (0.0, 300.0), (400.0, 300.0), band_px=20.0)

    def run(feet_y):
        tracker, counter = Tracker(), SceneCounter([line])  # n_init = 3
        out = []
        for k, fy in enumerate(feet_y):
            dets = np.array([[180.0, fy - 110.0, 220.0, fy, 0.9]]) if fy else np.zeros((0, 5))
            out.extend(counter.update(tracker.update(dets, k * 0.1)).crossings)
        return out

    # An empty first frame: what the first frame shows is confirmed at once.
    assert run([None, 285.0, 315.0, None, None]) == []  # crossed while tentative, then died
    (crossing,) = run([None, 285.0, 315.0, 330.0, None])  # confirmed at the third hit
    assert (crossing.direction, crossing.t_s) == (IN, pytest.approx(0.3))


def test_an_unproven_track_counts_nothing_until_it_is_proven():
    """A cone-like track: no occupancy, no crossings; once proven, its held crossing counts."""
    counter = SceneCounter([DOOR])
    steps = walk(1, [(100, 50), (100, 150)], proven=False)
    counts = [counter.update(frame(k * 0.1, *tracks)) for k, tracks in enumerate(steps)]
    assert [c.occupancy for c in counts] == [0, 0]
    assert all(c.crossings == () for c in counts)
    later = counter.update(frame(0.2, trk(1, 100, 160)))
    assert later.occupancy == 1
    assert [(c.direction, c.t_s) for c in later.crossings] == [(IN, pytest.approx(0.2))]


def test_a_coasting_track_counts_while_inside_the_frame_not_at_its_border():
    counter = SceneCounter(coast_s=1.5, frame_size=(640.0, 480.0))
    hidden = trk(1, 300, 300, tsu=5)  # behind a lamp post, 0.5 s
    gone = trk(2, 630, 300, tsu=5)  # box reaches x = 650: walked out on the right
    long_gone = trk(3, 300, 300, tsu=20)  # 2 s: over coast_s
    assert counter.update(frame(1.0, hidden, gone, long_gone)).occupancy == 1
    assert SceneCounter(coast_s=1.5).update(frame(1.0, hidden, gone)).occupancy == 2


@pytest.mark.parametrize(("foot", "counts"), [
    ((585.0, 300.0), True),  # box 565-605: 35 px = 0.9 widths from the right border
    ((605.0, 300.0), False),  # box 585-625: 15 px = 0.4 widths: about half out, gone
    ((35.0, 300.0), False),  # box 15-55: the same at the left border
    ((300.0, 465.0), False),  # box bottom 15 px above the bottom border
    ((300.0, 110.0), True),  # box top 10 px below the top border: far away, not leaving
])
def test_a_coasting_track_half_a_box_width_from_the_border_has_walked_out(
        foot: tuple[float, float], counts: bool) -> None:
    """The detector loses someone leaving when about half of them is out of the frame, so
    a prediction that stops within half a box width of a side or the bottom is gone."""
    counter = SceneCounter(coast_s=1.5, frame_size=(640.0, 480.0))
    assert counter.update(frame(1.0, trk(1, *foot, tsu=5))).occupancy == int(counts)


def sparse_walk(track_id, points, stride):
    """Every ``stride``-th step of a walk; the counter sees a frame only then."""
    return walk(track_id, points)[::stride]


@pytest.mark.parametrize("stride", [1, 3, 5])
def test_a_crossing_counts_once_however_sparse_the_frames(stride):
    ys = list(range(40, 170, 6))  # 22 steps down over the door, through its band
    crossings = feed(SceneCounter([DOOR]), sparse_walk(1, [(100, y) for y in ys], stride))
    assert directions(crossings) == [IN]


def test_a_side_change_between_observations_far_apart_counts_once():
    """Seen above the line, lost for a second (no observation), seen below: one *in*; then
    seen below again after another gap: nothing more."""
    steps = [[trk(1, 100, 60)], [trk(1, 100, 70)]] + [[trk(1, 100, 90, tsu=k)] for k in
                                                       range(1, 8)]
    steps += [[trk(1, 100, 150)], [trk(1, 100, 160, tsu=1)], [trk(1, 100, 170)]]
    assert directions(feed(SceneCounter([DOOR]), steps)) == [IN]


def test_a_track_that_appears_on_one_side_and_ends_on_the_other_counts_once():
    steps = walk(4, [(100, 20), (100, 180)]) + [[]] * 5
    assert directions(feed(SceneCounter([DOOR]), steps)) == [IN]


def walkers_crossing(stride, config=None):
    """Six people walk right over a vertical line and three left, 80-120 px/s (a body height
    a second), one every 0.3 s, 10 % of their boxes missed; the tracker and counter see every
    ``stride``-th frame of a 10 fps camera. Returns (in, out)."""
    rng = np.random.default_rng(8)
    line = CountingLine("kerb", (400.0, 0.0), (400.0, 1200.0), band_px=20.0)
    people = [(100.0 if k % 3 else 700.0, 120.0 + 120.0 * k,
               (100.0 if k % 3 else -90.0) + rng.uniform(-20, 20), 0.3 * k) for k in range(9)]
    tracker, counter = Tracker(config), SceneCounter([line])
    crossings = []
    for k in range(0, 80, stride):
        t = k / 10.0
        dets = [[fx - 20, y - 100, fx + 20, y, rng.uniform(0.6, 0.95)]
                for x0, y, vx, start in people if start <= t
                for fx in [x0 + vx * (t - start)] if rng.random() > 0.1]
        crossings.extend(counter.update(tracker.update(np.array(dets).reshape(-1, 5), t)).crossings)
    return (sum(c.direction is IN for c in crossings), sum(c.direction is OUT for c in crossings))


@pytest.mark.parametrize("stride", [1, 3, 5])
def test_tracker_and_counter_count_walkers_at_a_pis_frame_rate(stride):
    # The line points down the frame, so walking right on screen is "out".
    assert walkers_crossing(stride) == (3, 6)


def test_without_the_distance_stage_sparse_frames_lose_walkers():
    assert walkers_crossing(5, TrackerConfig(gap_gate=0.0)) != (3, 6)
