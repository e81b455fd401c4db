"""The frame source against a real RTSP camera, with the password IP cameras ask for.

``RtspServer`` is GStreamer's RTSP server sending RTP/JPEG over TCP only, live at a
fixed frame rate; OpenCV's FFmpeg backend reads it exactly as it would read a street
camera. The counter forces RTSP over TCP (its sandbox forbids UDP) by setting
OPENCV_FFMPEG_CAPTURE_OPTIONS=rtsp_transport;tcp; these tests set the same (OpenCV
reads it at every open).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pytest

from agent.vision.source import LiveSource, open_capture, parse_source
from tests.mqtt_broker import wait_until
from tests.vision.streams import RtspServer, vtest_frames

pytestmark = pytest.mark.slow  # a real RTSP server (GStreamer, in a subprocess)
PASSWORD = "p@ss:w0rd"
"""With an '@' and a ':' in it, typed unencoded into the URL as people do."""
FAITHFUL = 3.0
"""Mean absolute difference (grey levels) below which a received frame is the sent one
through JPEG: about 1.7 at quality 90, while neighbouring frames of vtest.avi differ
from each other by 3.3 or more and a grey or smeared picture by tens."""


@pytest.fixture(autouse=True)
def tcp_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return vtest_frames(0, 20)


def nearest(image: np.ndarray, frames: Sequence[np.ndarray]) -> tuple[int, float]:
    """The source frame ``image`` looks most like: its index and the mean difference."""
    differences = [float(np.abs(image.astype(int) - f.astype(int)).mean()) for f in frames]
    best = int(np.argmin(differences))
    return best, differences[best]


def test_frames_arrive_whole_with_a_password_and_again_after_the_camera_restarts(
        frames: list[np.ndarray]) -> None:
    camera = RtspServer(frames, fps=25, user="admin", password=PASSWORD).start()
    source = LiveSource(parse_source(camera.url), fps_cap=30, reconnect_min_s=0.1,
                        reconnect_max_s=1.0).start()
    try:
        first = source.get(10.0)
        assert first is not None and first.image.shape == (576, 768, 3)
        index, difference = nearest(first.image, frames)
        assert difference < FAITHFUL, f"frame {index} of the video, not a damaged picture"
        camera.stop()
        assert wait_until(lambda: not source.stats().connected, 15)
        camera.start()
        assert wait_until(lambda: source.stats().connected, 15), "reopened"
        again = source.get(5.0)
        assert again is not None and nearest(again.image, frames)[1] < FAITHFUL
    finally:
        source.stop()
        camera.stop()
    assert source.stats().reconnects >= 1


@pytest.mark.parametrize("auth", ["digest", "basic"])
def test_the_camera_password_is_accepted_and_a_wrong_or_missing_one_refused(
        frames: list[np.ndarray], auth: str) -> None:
    camera = RtspServer(frames, fps=25, user="admin", password=PASSWORD, auth=auth).start()
    try:
        capture = open_capture(parse_source(camera.url))
        assert capture is not None, f"{auth} authentication with the URL's credentials"
        ok, image = capture.read()
        capture.release()
        assert ok and image is not None and nearest(image, frames)[1] < FAITHFUL
        wrong = camera.url.replace(PASSWORD, "wr0ng")
        assert open_capture(parse_source(wrong)) is None
        assert open_capture(parse_source(wrong.replace("admin:wr0ng@", ""))) is None
    finally:
        camera.stop()


def test_a_refused_password_is_retried_and_printed_nowhere(
        frames: list[np.ndarray], caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str]) -> None:
    camera = RtspServer(frames, fps=25, user="admin", password=PASSWORD).start()
    url = f"rtsp://admin:wr0ng-s3cret@127.0.0.1:{camera.port}{camera.path}"
    caplog.set_level(logging.WARNING, logger="agent.vision.source")
    source = LiveSource(parse_source(url), reconnect_min_s=0.1, reconnect_max_s=0.2).start()
    try:
        assert wait_until(lambda: source.stats().reconnects >= 2, 15)
        assert source.get(0.1) is None and not source.stats().connected
    finally:
        source.stop()
        camera.stop()
    printed = capfd.readouterr()  # FFmpeg and OpenCV write to the C-level stderr
    assert "401" in printed.err, "FFmpeg said why: the camera refused the password"
    assert f"camera source rtsp://***@127.0.0.1:{camera.port}/stream cannot be opened" \
        in caplog.text
    assert "s3cret" not in caplog.text + printed.out + printed.err
