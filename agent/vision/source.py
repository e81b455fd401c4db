"""Frame sources through OpenCV: a V4L2 camera, a video file, an RTSP or HTTP/MJPEG URL.

Two ways to read, for the two ways the counter runs:

* ``LiveSource`` (the daemon): a reader thread pulls frames as the source
  delivers them, keeps at most ``fps_cap`` per second, or fewer when the
  counter asks for fewer (``set_rate``: what its CPU allows, see
  ``agent.vision.pace``); the rest are *skipped*, by design. It shrinks
  them to ``resize_width`` and leaves the newest one in a single slot.
  When the consumer (the detector) falls behind anyway, the frame waiting in
  the slot is replaced by the newer one and counted as *dropped*: old frames
  are never queued, so the counts stay current and memory stays flat. A
  video file is replayed at its own frame rate, as if it were a camera, and
  from the start again at its end when ``loop`` is set.
  When the source fails to open or the stream drops, it is reopened after a
  wait that doubles from ``reconnect_min_s`` to ``reconnect_max_s`` and goes
  back to the minimum once frames flow again (the daemon's one
  :class:`agent.supervision.Backoff`, waited on the injected clock); every
  reopen attempt counts.
* ``read_video`` (``lokaalmeten count``): every frame of a file (or a
  stream) in order, as fast as the consumer takes them, timestamped with
  video time (frame index / fps).

Frames only ever live in memory here: nothing is written, encoded or logged.
Network sources get open and read timeouts, so a stalled stream counts as a
drop instead of hanging the reader.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, cast

import cv2
import numpy as np
from numpy.typing import NDArray

from agent.clock import SYSTEM, Clock
from agent.redact import redact_url
from agent.supervision import Backoff, Retries
from agent.vision.pace import next_keep_after

log = logging.getLogger(__name__)

OPEN_TIMEOUT_S = 10.0
"""Longest wait for a network source to answer when (re)opened."""
READ_TIMEOUT_S = 5.0
"""A network stream that delivers no frame for this long has dropped."""
DEFAULT_FPS = 25.0
"""Frame rate assumed for a file whose container does not say."""

Image = NDArray[np.uint8]
SourceKind = Literal["device", "file", "url"]


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A parsed ``source`` setting."""

    kind: SourceKind
    target: str | int
    """Device index or path, file path, or URL."""

    def __str__(self) -> str:
        """The source fit for a log line or an error: a URL without its credentials."""
        return redact_url(str(self.target)) if self.kind == "url" else str(self.target)

    def __repr__(self) -> str:  # a %r in a log line or a traceback shows no password either
        return f"SourceSpec({self.kind!r}, {str(self) if self.kind == 'url' else self.target!r})"


def parse_source(text: str) -> SourceSpec:
    """Classify a config ``source``: '0' or '/dev/video0', a URL, or else a file path."""
    value = os.path.expandvars(os.path.expanduser(text.strip()))
    if value.isdigit():
        return SourceSpec("device", int(value))
    if value.startswith("/dev/video"):
        return SourceSpec("device", value)
    if value.split("://", 1)[0].lower() in {"rtsp", "rtsps", "http", "https"} and "://" in value:
        return SourceSpec("url", value)
    return SourceSpec("file", value)


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame on its way to the detector; it never leaves the counter process."""

    image: Image
    """BGR uint8, possibly shrunk to ``resize_width``."""
    t_s: float
    """Capture time: the monotonic clock (live) or video time (files read offline), s."""
    index: int
    """Frames read from the source so far, this one included, minus one (0-based)."""
    scale: float = 1.0
    """Native pixels per pixel of ``image`` (1.0 when not resized)."""


@dataclass(frozen=True, slots=True)
class SourceStats:
    """Counters of a live source since it started."""

    frames_read: int
    frames_skipped: int
    """Left out to keep to ``fps_cap`` (by design, not a fault)."""
    frames_dropped: int
    """Replaced in the slot before the consumer took them (the consumer was behind)."""
    reconnects: int
    """Reopen attempts after a failure to open or a dropped stream."""
    connected: bool
    finished: bool
    """A non-looping file has ended; no more frames will come."""


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` a source uses (tests may pass their own).

    ``grab`` takes the next frame from the camera or file, ``retrieve`` decodes it into
    an image: a frame skipped to keep to the analysis rate is grabbed only, never
    converted to pixels (an MJPEG camera's JPEG stays undecoded, a video's frame is not
    converted to BGR nor copied into a new array).
    """

    def grab(self) -> bool: ...
    def retrieve(self) -> tuple[bool, Image | None]: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


Opener = Callable[[SourceSpec], Capture | None]


def open_capture(spec: SourceSpec, *, open_timeout_s: float = OPEN_TIMEOUT_S,
                 read_timeout_s: float = READ_TIMEOUT_S) -> Capture | None:
    """Open a source with the right OpenCV backend, or None when it cannot be opened.

    The timeouts apply to network sources (FFmpeg's interrupt callback).
    """
    if spec.kind == "device":
        capture = cv2.VideoCapture(spec.target, cv2.CAP_V4L2)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a stale queue
    elif spec.kind == "file":
        if not Path(str(spec.target)).is_file():
            return None
        capture = cv2.VideoCapture(str(spec.target), cv2.CAP_FFMPEG)
    else:
        if str(spec.target).lower().startswith("rtsp"):
            # RTSP over TCP: UDP loses packets (smeared frames) on busy street networks.
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        capture = cv2.VideoCapture(str(spec.target), cv2.CAP_FFMPEG, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000)])
    if not capture.isOpened():
        capture.release()
        return None
    # OpenCV's stubs type frames as any-dtype MatLike; a VideoCapture reads uint8 BGR.
    return cast(Capture, capture)


def shrink(image: Image, width: int | None) -> tuple[Image, float]:
    """The image at most ``width`` wide (area averaging), and native px per new px."""
    if width is None or image.shape[1] <= width:
        return image, 1.0
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return np.asarray(small, dtype=np.uint8), image.shape[1] / width


def capture_fps(capture: Capture) -> float:
    """The frame rate a capture reports, or DEFAULT_FPS when it reports none."""
    fps = capture.get(cv2.CAP_PROP_FPS)
    return fps if math.isfinite(fps) and 1.0 <= fps <= 240.0 else DEFAULT_FPS


@dataclass(frozen=True, slots=True)
class VideoInfo:
    fps: float
    frames: int
    """Frame count from the container; 0 when unknown (a progress bar then shows no total)."""
    width: int
    height: int
    """Native frame size in pixels; 0 when the source does not say."""


def video_info(target: str | Path) -> VideoInfo:
    """Frame rate and length of a video file (or what a stream says), for offline counting."""
    spec = parse_source(str(target))
    capture = open_capture(spec)
    if capture is None:
        raise FileNotFoundError(f"cannot open video {spec}")
    try:
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        frames = int(count) if math.isfinite(count) and 0 < count < 1e9 else 0
        size = [capture.get(p) for p in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT)]
        width, height = (int(v) if math.isfinite(v) and 0 < v < 1e5 else 0 for v in size)
        return VideoInfo(capture_fps(capture), frames, width, height)
    finally:
        capture.release()


def read_video(target: str | Path, resize_width: int | None = None,
               fps: float | None = None) -> Iterator[Frame]:
    """Every frame in order, timestamped with video time (index / fps).

    ``target`` is a file, or any other source (an MJPEG URL: then every frame
    the stream delivers, until it ends). ``fps`` overrides the frame rate the
    source reports, which streams often get wrong.
    """
    spec = parse_source(str(target))
    capture = open_capture(spec)
    if capture is None:
        raise FileNotFoundError(f"cannot open video {spec}")
    rate = fps or capture_fps(capture)
    index = 0
    try:
        while capture.grab():
            ok, image = capture.retrieve()
            if not ok or image is None:
                return
            small, scale = shrink(image, resize_width)
            yield Frame(small, index / rate, index, scale)
            index += 1
    finally:
        capture.release()


class LiveSource:
    """Reads a source on its own thread and keeps only the newest frame (module docstring)."""

    def __init__(
        self,
        spec: SourceSpec,
        *,
        fps_cap: float = 10.0,
        resize_width: int | None = None,
        loop: bool = True,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 30.0,
        opener: Opener = open_capture,
        clock: Clock = SYSTEM,
    ) -> None:
        if fps_cap <= 0 or reconnect_min_s <= 0 or reconnect_max_s < reconnect_min_s:
            raise ValueError("need fps_cap > 0 and 0 < reconnect_min_s <= reconnect_max_s")
        self.spec = spec
        self.fps_cap = fps_cap
        self._keep_period = 1.0 / fps_cap
        self.resize_width = resize_width
        self.loop = loop
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self._open = opener
        self._clock = clock
        self._stop = threading.Event()
        self._ready = threading.Condition()
        self._slot: Frame | None = None
        self._read = self._skipped = self._dropped = self._reconnects = 0
        self._connected = self._finished = False
        self._file_due = 0.0
        """When a file's next frame is due: kept across a loop, so the replay's first frame
        comes one frame period after the last one, not at once with the same time."""
        self._thread = threading.Thread(target=self._run, name="frame-source", daemon=True)

    def start(self) -> LiveSource:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = READ_TIMEOUT_S + 1.0) -> None:
        self._stop.set()
        with self._ready:
            self._ready.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def get(self, timeout_s: float) -> Frame | None:
        """The newest frame not taken yet, waiting up to ``timeout_s``; None if none came."""
        with self._ready:
            if self._slot is None and not self._finished:
                self._ready.wait(timeout_s)
            frame, self._slot = self._slot, None
            return frame

    def set_rate(self, fps: float) -> None:
        """Keep at most ``fps`` frames per second from now on (never more than ``fps_cap``)."""
        if fps <= 0:
            raise ValueError("need fps > 0")
        self._keep_period = 1.0 / min(fps, self.fps_cap)  # one float: atomic for the reader

    def stats(self) -> SourceStats:
        with self._ready:
            return SourceStats(self._read, self._skipped, self._dropped, self._reconnects,
                               self._connected, self._finished)

    # -- the reader thread ----------------------------------------------------------------

    def _run(self) -> None:
        retries = Retries(Backoff(self.reconnect_min_s, self.reconnect_max_s))
        first = True
        while not self._stop.is_set():
            if not first:
                with self._ready:
                    self._reconnects += 1
            first = False
            capture = self._open(self.spec)
            if capture is None:
                backoff = retries.failed()
                log.warning("camera source %s cannot be opened; retrying in %.1f s",
                            self.spec, backoff)
            else:
                try:
                    delivered, ended = self._pump(capture)
                finally:
                    capture.release()
                    self._set_connected(False)
                if self._stop.is_set():
                    return
                if ended and self.loop and delivered:
                    first = True  # a file replayed from the start: not a reconnect
                    continue
                if ended:
                    with self._ready:
                        self._finished = True
                        self._ready.notify_all()
                    log.info("camera source %s ended", self.spec)
                    return
                if delivered:
                    retries.succeeded()
                backoff = retries.failed()
                log.warning("camera source %s dropped; reopening in %.1f s", self.spec, backoff)
            if self._clock.wait(self._stop, backoff):
                return

    def _pump(self, capture: Capture) -> tuple[bool, bool]:
        """Read until stopped or the source fails: (frames delivered?, a file ended?)."""
        is_file = self.spec.kind == "file"
        frame_period = 1.0 / capture_fps(capture) if is_file else 0.0
        next_keep = self._clock.monotonic()
        due = max(next_keep, self._file_due)
        delivered = False
        while not self._stop.is_set():
            if not capture.grab():
                return delivered, is_file and delivered
            if not delivered:
                delivered = True
                self._set_connected(True)
            if is_file:  # replay at the file's own pace, like a camera would deliver it
                wait = due - self._clock.monotonic()
                if wait > 0 and self._clock.wait(self._stop, wait):
                    break
                due = max(due, self._clock.monotonic() - frame_period) + frame_period
                self._file_due = due
            now = self._clock.monotonic()
            keep_period = self._keep_period
            with self._ready:
                self._read += 1
                index = self._read - 1
            following = next_keep_after(now, next_keep, keep_period)
            if following is None:
                with self._ready:
                    self._skipped += 1
                continue
            ok, image = capture.retrieve()  # a frame kept: only now decoded into pixels
            if not ok or image is None:
                return delivered, is_file
            next_keep = following
            small, scale = shrink(image, self.resize_width)
            frame = Frame(small, now, index, scale)
            with self._ready:
                if self._slot is not None:
                    self._dropped += 1
                self._slot = frame
                self._ready.notify_all()
        return delivered, False

    def _set_connected(self, value: bool) -> None:
        with self._ready:
            self._connected = value
