"""Test media for the counting pipeline: vtest.avi, short clips, local MJPEG and RTSP cameras.

``MjpegServer`` plays a list of frames as ``multipart/x-mixed-replace`` JPEG
over HTTP from a thread, the way cheap IP cameras and ``mjpg-streamer`` do.
Each incoming connection follows a *plan* entry, so a test can make the
stream drop, refuse connections or stall, and see the source reconnect.
Encoding frames to JPEG is the test camera's job; the agent never encodes.
"""

from __future__ import annotations

import os
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.mqtt_broker import free_port

REPO = Path(__file__).resolve().parents[2]
INT8_MODEL = REPO / "models" / "nanodet-g-416.int8.onnx"


def media_path() -> Path:
    base = os.environ.get("LOKAALMETEN_MEDIA_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "lokaalmeten" / "media"
    return root / "vtest.avi"


def require_media() -> Path:
    """vtest.avi, or fail with how to get it (skip when LOKAALMETEN_SKIP_MEDIA=1)."""
    path = media_path()
    if not path.is_file():
        if os.environ.get("LOKAALMETEN_SKIP_MEDIA") == "1":
            pytest.skip("vtest.avi absent and LOKAALMETEN_SKIP_MEDIA=1")
        pytest.fail(f"{path} is missing: run scripts/fetch-test-media "
                    "(or set LOKAALMETEN_SKIP_MEDIA=1 to skip the video tests)")
    return path


def vtest_frames(start: int, stop: int) -> list[np.ndarray]:
    """Frames start..stop-1 of vtest.avi."""
    capture = cv2.VideoCapture(str(require_media()))
    frames, index = [], 0
    while index < stop and capture.grab():
        if index >= start:
            frames.append(capture.retrieve()[1])
        index += 1
    capture.release()
    return frames


def write_clip(path: Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    """A short MJPEG AVI of the given frames (test material only)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    assert path.stat().st_size > 0
    return path


@dataclass(frozen=True)
class Plan:
    """What to do with one incoming connection."""

    mode: str = "serve"
    """serve: send frames; refuse: answer 503; stall: send ``frames`` then go silent."""
    frames: int | None = None
    """Frames to send before closing (serve) or going silent (stall); None: forever."""


class MjpegServer:
    """An MJPEG-over-HTTP camera on 127.0.0.1 (see the module docstring)."""

    def __init__(self, frames: Sequence[np.ndarray], fps: float = 10.0,
                 plans: Sequence[Plan] = (), default: Plan = Plan()) -> None:
        self.jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
                      for f in frames]
        self.period = 1.0 / fps
        self.plans = list(plans)
        self.default = default
        self.connections: list[float] = []
        """Monotonic time of every request, in order."""
        self.frames_sent = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        # Polls for shutdown every 50 ms, not 0.5 s: each test stops one.
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/stream.mjpg"

    def start(self) -> MjpegServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        with self._lock:
            n = len(self.connections)
            self.connections.append(time.monotonic())
            plan = self.plans[n] if n < len(self.plans) else self.default
        if plan.mode == "refuse":
            request.send_error(503, "camera busy")
            return
        request.send_response(200)
        request.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        request.send_header("Cache-Control", "no-cache")
        request.end_headers()
        sent = 0
        try:
            while not self._stopping.is_set() and (plan.frames is None or sent < plan.frames):
                jpeg = self.jpegs[sent % len(self.jpegs)]
                request.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                    b"Content-Length: %d\r\n\r\n" % len(jpeg) + jpeg + b"\r\n")
                request.wfile.flush()
                sent += 1
                with self._lock:
                    self.frames_sent += 1
                self._stopping.wait(self.period)
            if plan.mode == "stall":
                self._stopping.wait(30)
        except (BrokenPipeError, ConnectionResetError):
            return


RTSP_SERVER = Path(__file__).with_name("rtsp_server_gst.py")
SYSTEM_PYTHON = "/usr/bin/python3"


class RtspServer:
    """An RTSP camera on 127.0.0.1: GStreamer's RTSP server, RTP/JPEG over TCP only.

    It runs in Debian's Python (``rtsp_server_gst.py`` says why) and behaves like a live
    camera: ``frames`` loop at ``fps`` in real time; a client gets what is sent from the
    moment it joins. With ``user`` and ``password`` it asks for them (``auth``: "digest"
    or "basic"); ``url`` then carries them as a camera URL does. ``stop()`` then
    ``start()`` restarts it on the same port, like a camera rebooting.
    """

    def __init__(self, frames: Sequence[np.ndarray], *, fps: int = 10, path: str = "/stream",
                 user: str | None = None, password: str | None = None,
                 auth: str = "digest") -> None:
        self.jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
                      for f in frames]
        self.height, self.width = frames[0].shape[:2]
        self.fps = fps
        self.path = path
        self.port = free_port()
        self.credentials = (user, password) if user is not None and password is not None \
            else None
        self.auth = auth
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        userinfo = "" if self.credentials is None else "{}:{}@".format(*self.credentials)
        return f"rtsp://{userinfo}127.0.0.1:{self.port}{self.path}"

    def start(self) -> RtspServer:
        env = dict(os.environ)
        if self.credentials is not None:
            env.update(LOKAALMETEN_RTSP_USER=self.credentials[0],
                       LOKAALMETEN_RTSP_PASSWORD=self.credentials[1],
                       LOKAALMETEN_RTSP_AUTH=self.auth)
        # stderr to a file, read only on failure: a pipe nobody reads could fill and block.
        with tempfile.TemporaryFile() as errors:
            self._process = process = subprocess.Popen(
                [SYSTEM_PYTHON, str(RTSP_SERVER), str(self.port), self.path, str(self.fps),
                 str(self.width), str(self.height)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=errors, env=env)
            assert process.stdin is not None and process.stdout is not None
            try:
                for jpeg in self.jpegs:
                    process.stdin.write(struct.pack(">I", len(jpeg)) + jpeg)
                process.stdin.write(struct.pack(">I", 0))
                process.stdin.close()
            except BrokenPipeError:
                pass  # it died early: said below
            if process.stdout.readline().strip() != b"ready":
                process.kill()
                process.wait(10)
                errors.seek(0)
                raise RuntimeError(
                    "the RTSP test camera did not start (python3-gi, gir1.2-gst-rtsp-server-1.0"
                    " and gstreamer1.0-plugins-good installed?): "
                    + errors.read()[-1000:].decode(errors="replace"))
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            assert self._process.stdout is not None
            self._process.stdout.close()
            self._process = None
