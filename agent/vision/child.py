"""The counter process: frames in, counter records out (the daemon side is ``process.py``).

Forked by the zygote (``agent.vision.zygote``), a bare interpreter that holds
the camera group the daemon gave up and no capability: it inherits no daemon
state, only the write end of a pipe, and every module of the counter is
imported here, after the fork. Frames exist only in here. What leaves is what
``agent.vision.record`` can encode: numbers under the quantity names this
camera's configuration allows, times in whole seconds. The daemon checks each record again and
replaces a counter that sends anything else.

The process stops on SIGTERM (the daemon's stop, systemd, Ctrl-C), after
reporting the partial interval; it also leaves when the daemon dies (the
zygote then leaves, so its parent changes; or the pipe breaks). This module
imports neither OpenCV nor onnxruntime at import time; ``_count`` loads them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from typing import Any

from agent.clock import SYSTEM, Clock
from agent.config.camera import CameraConfig
from agent.logformat import configure
from agent.vision.grid import UtcGrid
from agent.vision.record import Kind, Schema, schema_for
from agent.vision.sandbox import confine, pin_camera
from agent.vision.zygote import SETUP_SIGNAL, ChildSpec

log = logging.getLogger(__name__)

EXIT_FINISHED = 3
"""The child's exit code when a non-looping video file has ended: do not restart."""
EXIT_CONFIG = 2
"""The child's exit code when the camera cannot be set up (model missing or unreadable)."""
POLL_S = 0.2


def run_counter(spec: ChildSpec, channel: Connection) -> None:
    """Counter process entry point; exits with EXIT_FINISHED or EXIT_CONFIG where they apply."""
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # before anything loads onnxruntime (pipeline.py)
    parent = os.getppid()  # the zygote; it leaves when the daemon does
    configure(spec.log_level, f"counter[{spec.camera_id}]")  # credentials redacted
    terminated = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):  # the daemon, systemd and Ctrl-C
        signal.signal(signum, lambda *_: terminated.set())
    with contextlib.suppress(OSError):
        os.nice(5)  # a late frame matters less than a sensor slot in the daemon
    from agent.errors import ConfigError  # noqa: PLC0415

    def should_stop() -> bool:
        return terminated.is_set() or os.getppid() != parent

    config = CameraConfig.model_validate(spec.settings)
    outbound = Outbound(schema_for(config), channel, SYSTEM)
    # FFmpeg's RTSP client would negotiate UDP, which the sandbox forbids.
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
    try:
        camera = pin_camera(os.path.expandvars(os.path.expanduser(config.source)))
    except OSError as exc:
        log.error("camera %s: cannot resolve its host: %s", spec.camera_id, exc)
        raise SystemExit(1) from exc
    confine(camera.port, camera.devices,
            require=os.environ.get("LOKAALMETEN_REQUIRE_SANDBOX") == "1")
    config = config.model_copy(update={"source": camera.source})
    try:
        code = _count(config, outbound, should_stop, SYSTEM)
    except ConfigError as exc:
        log.error("camera %s cannot start: %s", spec.camera_id, exc)
        code = EXIT_CONFIG
    except BrokenPipeError:
        code = 0  # the daemon is gone; nobody is left to report to
    channel.close()
    if code:
        raise SystemExit(code)


class Outbound:
    """Encodes and sends records; switches (alerts, source state) at most once a second.

    The daemon accepts one switch of each alert and of the source state per
    second, alternating, with times in whole seconds. A zone whose density
    hovers at its threshold can flip several times within a second, so a
    switch is sent only when its state differs from the last one sent and a
    second has passed since; a flip and a flip back within that second send
    nothing, and a change that must wait goes out with the next frame. The
    second is kept on the monotonic clock as well as in the stamps: after the
    wall clock stepped back, a switch waits one real second, not until the wall
    clock has passed the last stamp again (the daemon's gate allows for the step).
    """

    def __init__(self, schema: Schema, channel: Connection, clock: Clock) -> None:
        self.schema = schema
        self._channel = channel
        self._clock = clock
        self._wanted: dict[str, tuple[Kind, int]] = {}
        self._sent: dict[str, int] = {}
        self._sent_at: dict[str, tuple[int, float]] = {}
        """Per switch: the whole second it was stamped with, the monotonic time it went."""

    def interval(self, utc_ms: int, values: Iterable[tuple[str, float]]) -> None:
        """Send an interval record; its end comes from ``UtcGrid.reported`` (whole seconds)."""
        self._send(Kind.INTERVAL, utc_ms, values)

    def switch(self, kind: Kind, name: str, on: bool) -> None:
        """Note the wanted state of an alert or of the source; ``flush`` sends it."""
        self._wanted[name] = (kind, int(on))
        self.flush()

    def flush(self) -> None:
        now_s = self._clock.wall_ms() // 1000
        mono = self._clock.monotonic()
        for name, (kind, state) in self._wanted.items():
            if self._sent.get(name, 0 if kind is Kind.ALERT else -1) == state:
                continue
            stamped_s, sent_mono = self._sent_at.get(name, (-1, -math.inf))
            if mono < sent_mono + 1 or now_s == stamped_s:
                continue
            self._send(kind, now_s * 1000, ((name, state),))
            self._sent[name] = state
            self._sent_at[name] = (now_s, mono)

    def setup(self, values: Iterable[tuple[str, float]]) -> None:
        """Send a set-up record (``agent.vision.setup_mode``), stamped in whole seconds."""
        self._send(Kind.SETUP, self._clock.wall_ms() // 1000 * 1000, values)

    def _send(self, kind: Kind, utc_ms: int, values: Iterable[tuple[str, float]]) -> None:
        self._channel.send_bytes(self.schema.encode(kind, utc_ms, values))


def _count(config: CameraConfig, outbound: Outbound, should_stop: Callable[[], bool],
           clock: Clock) -> int:
    """The live loop: frames in, records out, until ``should_stop`` or a file ends.

    Every time it reads (interval grid, frame pace, set-up lease) and the frame
    source's waits come from ``clock``, the one clock of the daemon's components.
    """
    import cv2  # noqa: PLC0415 - the counter process only

    from agent.vision.pace import AnalysisPace  # noqa: PLC0415
    from agent.vision.pipeline import build_pipeline  # noqa: PLC0415
    from agent.vision.setup_mode import SetupMode  # noqa: PLC0415 - tracker, scipy
    from agent.vision.source import LiveSource, parse_source  # noqa: PLC0415

    cv2.setNumThreads(1)  # resizes are small; leave the cores to the detector
    # Intervals end on multiples of interval_s in UTC, so every box reports the same grid.
    grid = UtcGrid(clock, config.interval_s)
    pipeline = build_pipeline(config, start_s=grid.start_s)
    source = LiveSource(parse_source(config.source), fps_cap=config.fps_cap,
                        resize_width=config.resize_width, loop=config.loop,
                        reconnect_min_s=config.reconnect_min_s,
                        reconnect_max_s=config.reconnect_max_s, clock=clock).start()
    pace = AnalysisPace(config.fps_cap)
    log.info("counting on %s", source.spec)
    setup = SetupMode(config.setup, [x.name for x in config.lines], outbound.setup,
                      clock=clock)
    signal.signal(SETUP_SIGNAL, lambda *_: setup.renew())
    connected: bool | None = None

    def send_intervals(reports: list[Any]) -> None:
        stats = source.stats()
        for report in reports:
            outbound.interval(grid.reported(report.record.end_s),
                              (*report.values(),
                               ("fps_target", pace.fps),
                               ("frames_dropped_total", stats.frames_dropped),
                               ("source_reconnects_total", stats.reconnects)))

    try:
        while not should_stop():
            frame = source.get(POLL_S)
            if grid.moved():
                send_intervals(pipeline.follow(grid.follow()))
            stats = source.stats()
            if stats.connected != connected:
                connected = stats.connected
                outbound.switch(Kind.STATUS, "source_up", connected)
                if pipeline.motion is not None:
                    pipeline.motion.reset()
            outbound.flush()
            setup.flush()
            if frame is None:
                send_intervals(pipeline.tick(clock.monotonic()))
                if stats.finished:
                    break
                continue
            began = clock.monotonic()
            result = pipeline.process(frame)
            setup.observe(pipeline.scene.frame_size, result.tracks, result.counts)
            pace.observe(clock.monotonic() - began)
            source.set_rate(pace.fps)
            for alert in result.counts.alerts:
                outbound.switch(Kind.ALERT, f"zone_{alert.zone}_density_alert", alert.on)
            send_intervals(list(result.closed))
        send_intervals(pipeline.finish(clock.monotonic()))
    finally:
        source.stop()
    return EXIT_FINISHED if source.stats().finished else 0

