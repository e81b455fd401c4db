"""Frame sources: files, the fps cap, dropping for a slow consumer, reconnect with backoff.

Network tests run against ``MjpegServer``, a real MJPEG-over-HTTP camera on
127.0.0.1 read by OpenCV's FFmpeg backend exactly as a street camera would be;
RTSP cameras have ``test_rtsp_source.py``.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from agent.vision.pace import AnalysisPace
from agent.vision.source import (
    Frame,
    LiveSource,
    SourceSpec,
    open_capture,
    parse_source,
    read_video,
    shrink,
    video_info,
)
from tests.clock import FakeClock
from tests.mqtt_broker import wait_until
from tests.vision.streams import MjpegServer, Plan, require_media, vtest_frames, write_clip


class SteppedCamera:
    """A camera at ``fps`` on a fake clock that delivers a frame when the test steps it.

    ``grab()`` waits for :meth:`step`, then lets one frame period pass on the clock.
    :meth:`step` returns once the source has dealt with that frame (kept, skipped or
    dropped it) and asks for the next, so a test sees every decision in order and no
    real time passes. The frame number is written into the first pixel.
    """

    def __init__(self, clock: FakeClock, fps: float = 30.0) -> None:
        self.clock = clock
        self.fps = fps
        self.n = 0
        self.retrieved = 0
        self.released = False
        self._cond = threading.Condition()
        self._reads = 0
        self._allowed = 0
        self._closed = False

    def grab(self) -> bool:
        with self._cond:
            self._reads += 1
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._allowed >= self._reads or self._closed, 10)
            if self._allowed < self._reads:
                return False
        self.clock.sleep(1.0 / self.fps)
        self.n += 1
        return True

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        """The frame last grabbed; counted, since only kept frames need pixels."""
        self.retrieved += 1
        image = np.zeros((48, 64, 3), np.uint8)
        image[0, 0, 0] = (self.n - 1) % 256
        return True, image

    def step(self) -> None:
        with self._cond:
            self._allowed += 1
            self._cond.notify_all()
            assert self._cond.wait_for(lambda: self._reads > self._allowed, 10), \
                "the source did not come back for the next frame"

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def get(self, prop: int) -> float:
        return self.fps

    def release(self) -> None:
        self.released = True


@contextmanager
def stepped(fps_cap: float) -> Iterator[tuple[LiveSource, SteppedCamera]]:
    """A live source over a stepped 30 fps camera, both on one fake clock."""
    clock = FakeClock()
    camera = SteppedCamera(clock)
    source = LiveSource(SourceSpec("url", "fake"), fps_cap=fps_cap,
                        opener=lambda spec: camera, clock=clock).start()
    try:
        yield source, camera
    finally:
        camera.close()
        source.stop()


def collect(source: LiveSource, seconds: float) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame = source.get(0.05)
        if frame is not None:
            frames.append(frame)
    return frames


def test_sources_are_classified_and_urls_are_logged_without_credentials(monkeypatch):
    monkeypatch.setenv("CAMS", "/srv/cams")
    assert parse_source("0") == SourceSpec("device", 0)
    assert parse_source("/dev/video2") == SourceSpec("device", "/dev/video2")
    assert parse_source("rtsp://user:secret@10.0.0.5:554/stream1").kind == "url"
    assert parse_source("http://cam.local/video.mjpg").kind == "url"
    assert parse_source("$CAMS/street.mp4") == SourceSpec("file", "/srv/cams/street.mp4")
    assert parse_source("~/clip.avi").target == str(Path.home() / "clip.avi")
    assert str(parse_source("rtsp://user:secret@10.0.0.5:554/s")) == "rtsp://***@10.0.0.5:554/s"
    # every form agent.redact knows (tests/test_redact.py has the table)
    assert str(parse_source("rtsp://admin:p@ss/w0rd@[fe80::1]:554/live?pwd=x&channel=1")) == \
        "rtsp://***@[fe80::1]:554/live?pwd=***&channel=1"
    assert str(parse_source("/srv/user=me;password=x.mp4")) == "/srv/user=me;password=x.mp4", \
        "a file path is shown as it is"
    assert repr(parse_source("http://u:pw@cam/snap.cgi?pwd=x")) == \
        "SourceSpec('url', 'http://***@cam/snap.cgi?pwd=***')"
    assert repr(parse_source("0")) == "SourceSpec('device', 0)"


def test_read_video_gives_every_frame_in_video_time():
    path = require_media()
    info = video_info(path)
    assert (info.fps, info.frames) == (10.0, 795)
    frames = []
    for frame in read_video(path, resize_width=384):
        frames.append(frame)
        if len(frames) == 25:
            break
    assert [f.index for f in frames] == list(range(25))
    assert [f.t_s for f in frames] == pytest.approx([i / 10 for i in range(25)])
    assert frames[0].image.shape == (288, 384, 3) and frames[0].scale == 2.0


def test_shrink_keeps_aspect_and_never_enlarges():
    image = np.zeros((576, 768, 3), np.uint8)
    small, scale = shrink(image, 320)
    assert small.shape == (240, 320, 3) and scale == pytest.approx(2.4)
    same, scale = shrink(image, 1024)
    assert same is image and scale == 1.0


def test_fps_cap_skips_frames_instead_of_queueing_them():
    frames: list[Frame] = []
    with stepped(fps_cap=10) as (source, camera):
        for _ in range(45):  # 1.5 s of a 30 fps camera, each frame taken at once
            camera.step()
            frame = source.get(0)
            if frame is not None:
                frames.append(frame)
        stats = source.stats()
    # The first frame, then 10 per second on the grid the source set when it opened: two
    # of every three skipped, none queued or dropped.
    assert len(frames) == 16
    assert np.diff([f.t_s for f in frames[1:]]) == pytest.approx([0.1] * 14)
    assert stats.frames_read == 45 and stats.frames_skipped == 29
    assert stats.frames_dropped == 0
    assert camera.retrieved == 16, "a skipped frame is grabbed, never decoded into pixels"
    assert all(int(f.image[0, 0, 0]) == f.index for f in frames), "each the frame it says"


def test_slow_consumer_gets_the_newest_frame_and_the_rest_are_counted_as_dropped():
    frames: list[Frame] = []
    with stepped(fps_cap=30) as (source, camera):
        for n in range(1, 37):  # 1.2 s of a 30 fps camera
            camera.step()
            if n % 8 == 0:  # a detector at about 4 fps
                frame = source.get(0)
                assert frame is not None
                frames.append(frame)
        stats = source.stats()
        waiting = 1 if source.get(0) else 0
    assert [f.index for f in frames] == [7, 15, 23, 31], "old frames were queued, not replaced"
    assert stats.frames_dropped == 36 - len(frames) - waiting
    assert stats.frames_read == stats.frames_dropped + stats.frames_skipped + len(frames) + waiting


def test_a_counter_that_paces_the_source_gets_evenly_spaced_frames_instead_of_drops():
    """The counter's loop (agent.vision.child): analyse, note the time, set the rate."""
    pace = AnalysisPace(30)
    frames: list[Frame] = []
    settling = None  # the source's counters once the pace has been measured
    with stepped(fps_cap=30) as (source, camera):
        busy_until = camera.clock.now
        for _ in range(75):  # 2.5 s of a 30 fps camera
            camera.step()
            if camera.clock.now < busy_until:
                continue  # still analysing the last frame
            frame = source.get(0)
            if frame is None:
                continue
            frames.append(frame)
            if len(frames) == 4:
                settling = source.stats()
            busy_until = camera.clock.now + 0.15  # a detector at about 6.7 frames/s
            pace.observe(0.15)
            source.set_rate(pace.fps)
        stats = source.stats()
        with pytest.raises(ValueError):
            source.set_rate(0)
    assert pace.fps < 30 * 0.5, "the rate did not follow the time per frame"
    assert settling is not None and len(frames) >= 9
    # Paced, the source leaves the frames the counter cannot take out (skipped) instead of
    # replacing them in the slot (dropped), as it must until the first frames are measured.
    assert stats.frames_dropped == settling.frames_dropped, (settling, stats)
    assert stats.frames_skipped - settling.frames_skipped >= 2 * (len(frames) - 4)
    assert set(np.diff([f.index for f in frames[3:]])) <= {5, 6}  # 30 fps at 5.7 frames/s


def test_file_is_replayed_at_its_own_rate_and_looped(tmp_path):
    clip = write_clip(tmp_path / "clip.avi", vtest_frames(0, 10), fps=20)
    clock = FakeClock()  # the file's pace passes in fake time
    source = LiveSource(SourceSpec("file", str(clip)), fps_cap=60, clock=clock).start()
    frames: list[Frame] = []
    try:
        while not frames or frames[-1].index < 25:  # two and a half times through the clip
            frame = source.get(5.0)
            assert frame is not None, "the looped file stopped delivering"
            frames.append(frame)
    finally:
        source.stop()
    # Frames the test was too slow to take are dropped from the slot, so between two
    # that it took pass one or more periods of the file's 20 fps, never less: not as fast
    # as it decodes, and the replay's first frame is not stamped with the last one's time.
    steps = [round((b.t_s - a.t_s) / 0.05, 6) for a, b in itertools.pairwise(frames)]
    assert all(step >= 1 and step == int(step) for step in steps), steps
    assert source.stats().reconnects == 0, "looping is not a reconnect"


def test_file_without_loop_finishes(tmp_path):
    # 10 fps: a consumer waiting in get() has 0.1 s to take each frame, even on a busy machine.
    clip = write_clip(tmp_path / "clip.avi", vtest_frames(0, 6), fps=10)
    source = LiveSource(SourceSpec("file", str(clip)), fps_cap=60, loop=False).start()
    try:
        frames: list[Frame] = []
        while (frame := source.get(5.0)) is not None:  # None once the file has ended
            frames.append(frame)
        assert source.get(0.05) is None
    finally:
        source.stop()
    assert len(frames) == 6 and source.stats().finished


def test_missing_file_is_retried_with_growing_waits_until_it_appears(tmp_path):
    clip = tmp_path / "late.avi"
    attempts: list[float] = []

    def opener(spec: SourceSpec):
        attempts.append(time.monotonic())
        return open_capture(spec)

    clock = FakeClock()  # the waits pass in fake time
    source = LiveSource(SourceSpec("file", str(clip)), fps_cap=30, reconnect_min_s=1,
                        reconnect_max_s=4, opener=opener, clock=clock).start()
    try:
        assert wait_until(lambda: len(attempts) >= 5, 20)  # fake waits: only a loaded CPU is slow
        assert not source.stats().connected and source.get(0) is None
        # Doubling from reconnect_min_s, capped at reconnect_max_s.
        assert clock.slept[:4] == [1, 2, 4, 4]
        write_clip(clip, vtest_frames(0, 5), fps=10)
        assert source.get(2.0) is not None
        assert source.stats().connected and source.stats().reconnects >= 4
    finally:
        source.stop()


def test_mjpeg_stream_that_drops_is_reopened_with_backoff():
    camera = MjpegServer(vtest_frames(0, 5), fps=20,
                         plans=[Plan("serve", 6), Plan("refuse"), Plan("refuse")]).start()
    clock = FakeClock()  # the waits pass in fake time (and frames are kept after them)
    source = LiveSource(SourceSpec("url", camera.url), fps_cap=30, reconnect_min_s=1,
                        reconnect_max_s=20, clock=clock).start()
    try:
        first = source.get(5.0)
        assert first is not None and first.image.shape == (576, 768, 3)
        assert wait_until(lambda: len(camera.connections) >= 4, 10)
        assert wait_until(lambda: source.stats().connected, 5)
        later = source.get(2.0)
        assert later is not None and later.index > first.index
    finally:
        source.stop()
        camera.stop()
    # After a stream that delivered (6 frames at 20 fps), wait the minimum; then double
    # the wait after each refused attempt.
    assert clock.slept[:3] == [1, 2, 4]
    assert source.stats().reconnects == 3


def test_stalled_stream_counts_as_a_drop_after_the_read_timeout():
    camera = MjpegServer(vtest_frames(0, 3), fps=20, plans=[Plan("stall", 3)]).start()
    opener = functools.partial(open_capture, read_timeout_s=0.5)
    source = LiveSource(SourceSpec("url", camera.url), fps_cap=30, reconnect_min_s=0.1,
                        opener=opener).start()
    try:
        assert source.get(5.0) is not None
        assert wait_until(lambda: len(camera.connections) >= 2, 5), "never reconnected"
        assert source.get(3.0) is not None
    finally:
        source.stop()
        camera.stop()
    assert 0.5 <= camera.connections[1] - camera.connections[0] < 3.0


def test_absent_camera_device_cannot_be_opened():
    assert open_capture(parse_source("/dev/video97")) is None

