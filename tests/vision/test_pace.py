"""The counter's own pace: the analysis rate its measured time per frame allows."""

from __future__ import annotations

import pytest

from agent.vision.pace import MIN_FPS, SHARE, AnalysisPace, KeepRate, next_keep_after


def test_the_cap_holds_until_a_frame_was_measured_and_the_first_frame_is_left_out():
    pace = AnalysisPace(10.0)
    assert pace.fps == 10.0
    pace.observe(3.0)  # the detector's start-up, not its pace
    assert pace.fps == 10.0
    pace.observe(0.25)
    assert pace.fps == pytest.approx(SHARE / 0.25)


def test_the_rate_follows_the_time_per_frame_within_the_cap():
    pace = AnalysisPace(10.0)
    for _ in range(100):
        pace.observe(0.3)  # a Pi 4's NanoDet-g frame
    assert pace.fps == pytest.approx(SHARE / 0.3, rel=1e-6)
    for _ in range(100):
        pace.observe(0.02)  # a fast box: the cap rules
    assert pace.fps == 10.0


def test_one_slow_frame_moves_the_rate_a_little_and_a_lasting_change_moves_it_all_the_way():
    pace = AnalysisPace(10.0)
    for _ in range(50):
        pace.observe(0.2)
    before = pace.fps
    pace.observe(2.0)  # one frame behind a page fault or a log rotation
    assert 0.3 * before < pace.fps < before
    for _ in range(60):
        pace.observe(0.5)  # a crowd: every frame costs more for a while
    assert pace.fps == pytest.approx(SHARE / 0.5, rel=0.01)


def test_the_rate_never_falls_below_the_floor_or_rises_above_a_low_cap():
    pace = AnalysisPace(10.0)
    for _ in range(100):
        pace.observe(60.0)
    assert pace.fps == MIN_FPS
    low = AnalysisPace(0.1)
    for _ in range(10):
        low.observe(0.01)
    assert low.fps == 0.1


@pytest.mark.parametrize("kwargs", [{"fps_cap": 0}, {"fps_cap": 5, "share": 0},
                                    {"fps_cap": 5, "share": 1.5},
                                    {"fps_cap": 5, "smoothing": 0}])
def test_nonsense_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        AnalysisPace(**kwargs)


def kept(times_s: list[float], fps: float | None) -> list[int]:
    """Indices of the frames a box analysing at most ``fps`` per second keeps."""
    rate = KeepRate(fps)
    taken = [i for i, t in enumerate(times_s) if rate.keeps(t)]
    assert rate.taken == len(taken)
    return taken


def test_frames_are_kept_evenly_at_the_asked_rate():
    # A 10 fps video analysed at 3 frames/s, as a Pi 4 does with the bundled model.
    video = [i / 10 for i in range(60)]
    assert kept(video, 3) == [0, 3, 6, 10, 13, 16, 20, 23, 26, 30, 33, 36, 40, 43, 46, 50, 53, 56]
    assert kept(video, 20) == kept(video, None) == list(range(60)), \
        "a rate above the source's, or none, keeps every frame"


@pytest.mark.parametrize("fps", [0, -1, float("nan"), float("inf")])
def test_a_rate_that_is_no_rate_is_refused(fps):
    with pytest.raises(ValueError, match="above 0"):
        KeepRate(fps)


def test_a_frame_slightly_early_is_kept_and_after_a_stall_the_next_is_not_bunched():
    assert next_keep_after(0.95, 1.0, 0.5) == pytest.approx(1.5), "a fifth of a period early"
    assert next_keep_after(0.85, 1.0, 0.5) is None
    assert next_keep_after(3.0, 1.0, 0.5) == pytest.approx(3.25), \
        "a frame 2 s late: the next may come half a period after it, not at once"

