"""The counter process and the daemon-side supervisor that keeps it running.

Privacy boundary: frames exist only inside the counter process. The only
thing that crosses to the daemon is a ``CounterRecord``, a kind, a time and
(name, number) pairs: counts, occupancy, timings. The supervisor checks that
on arrival and discards anything else.

* ``run_counter`` is the child's entry point (started with the ``spawn``
  method, so it begins from a fresh interpreter and inherits no daemon
  state): it loads the detector, opens the ``LiveSource`` and runs the
  ``Pipeline`` until told to stop, then reports the partial interval. It
  leaves when the daemon dies, too.
* ``CounterSupervisor`` (a daemon thread) starts the child, turns its
  records into ``Measurement``s on ``output`` for the main loop, and
  restarts a child that died after a wait that doubles from
  ``backoff_min_s`` to ``backoff_max_s`` (back to the minimum once a child
  has run ``stable_s``). Restarts show in the heartbeat.

This module imports neither OpenCV nor onnxruntime: the child loads them
inside ``run_counter``, so a daemon without cameras never does.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import multiprocessing
import os
import queue
import resource
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.synchronize import Event as MpEvent
from typing import Any, Literal

from agent.config.camera import CameraConfig
from agent.models import Measurement, MeasurementQueue
from agent.redact import redact_logging

log = logging.getLogger(__name__)

EXIT_FINISHED = 3
"""The child's exit code when a non-looping video file has ended: do not restart."""
EXIT_CONFIG = 2
"""The child's exit code when the camera cannot be set up (model missing or unreadable)."""
POLL_S = 0.2
PR_SET_DUMPABLE = 4
"""prctl option (linux/prctl.h): 0 makes the process non-dumpable and not ptrace-able."""

RecordKind = Literal["interval", "alert", "status"]
Pairs = tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class CounterRecord:
    """Everything that crosses from the counter process to the daemon: names and numbers."""

    kind: RecordKind
    """interval: a closed interval; alert: a density alert switched; status: source state."""
    utc_ms: int
    """Interval end, alert time or status time (epoch ms, UTC)."""
    values: Pairs
    meta: Pairs = ()


def is_numbers_only(item: object) -> bool:
    """True for a CounterRecord made of finite numbers under short names, nothing else."""
    if type(item) is not CounterRecord or item.kind not in ("interval", "alert", "status"):
        return False
    if type(item.utc_ms) is not int:
        return False
    pairs = item.values + item.meta
    return all(type(pair) is tuple and len(pair) == 2 and type(pair[0]) is str
               and len(pair[0]) <= 80 and type(pair[1]) in (int, float)
               and math.isfinite(pair[1]) for pair in pairs)


_FIXED_UNITS = {
    "fps": "/s", "inference_ms_p50": "ms", "inference_ms_p95": "ms", "frames": "{frame}",
    "frames_inferred": "{frame}", "frames_dropped_total": "{frame}",
}


def unit_of(quantity: str) -> str:
    """UCUM unit of a counter quantity (table in docs/payload.md)."""
    if quantity.endswith("_density_alert"):
        return "1"
    if "_density_" in quantity:
        return "{person}/m2"
    if quantity in _FIXED_UNITS:
        return _FIXED_UNITS[quantity]
    return "{person}" if quantity.startswith(("line_", "zone_", "occupancy_")) else "1"


def to_measurements(camera_id: str, record: CounterRecord,
                    monotonic_s: float) -> list[Measurement]:
    """The measurements an interval or alert record stands for (status records: none).

    The interval's ``meta`` (``suppress_below``) travels on its ``frames``
    measurement, which is always present.
    """
    if record.kind == "status":
        return []
    meta = tuple(sorted(record.meta))
    return [Measurement(camera_id, name, float(value), unit_of(name), record.utc_ms,
                        monotonic_s, meta=meta if name == "frames" else ())
            for name, value in record.values]


# ---- the child ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """What the counter process is started with (pickled by ``spawn``: plain data only)."""

    camera_id: str
    settings: dict[str, Any]
    """The camera section as JSON-able data, validated again in the child."""
    parent_pid: int
    """The daemon's pid; the child leaves when its parent changes (the daemon died)."""
    log_level: str = "INFO"


def run_counter(spec: ChildSpec, output: Any, stop: MpEvent) -> None:
    """Counter process entry point; exits with EXIT_FINISHED or EXIT_CONFIG where they apply."""
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # before anything loads onnxruntime (pipeline.py)
    logging.basicConfig(level=getattr(logging, spec.log_level, logging.INFO),
                        format=f"%(asctime)s %(levelname)s counter[{spec.camera_id}] "
                               "%(name)s: %(message)s")
    redact_logging()  # the camera URL's credentials never reach the journal
    terminated = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):  # systemd and Ctrl-C reach us too
        signal.signal(signum, lambda *_: terminated.set())
    with contextlib.suppress(OSError):
        os.nice(5)  # a late frame matters less than a sensor slot in the daemon
    _keep_memory_private()
    from agent.errors import ConfigError  # noqa: PLC0415

    def should_stop() -> bool:
        return stop.is_set() or terminated.is_set() or os.getppid() != spec.parent_pid

    try:
        code = _count(spec.camera_id, CameraConfig.model_validate(spec.settings), output,
                      should_stop)
    except ConfigError as exc:
        log.error("camera %s cannot start: %s", spec.camera_id, exc)
        code = EXIT_CONFIG
    output.close()
    output.join_thread()
    if code:
        raise SystemExit(code)


def _keep_memory_private() -> None:
    """No core dumps and no ptrace by other processes of our user: memory holds frames.

    A crash dump (or systemd-coredump) of this process would contain images;
    and any program running as the same user could otherwise read them from
    /proc/<pid>/mem. Best effort: on systems without prctl only the core
    limit applies.
    """
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def _count(camera_id: str, config: CameraConfig, output: Any,
           should_stop: Callable[[], bool]) -> int:
    """The live loop: frames in, records out, until ``should_stop`` or a file ends."""
    import cv2  # noqa: PLC0415 - the counter process only

    from agent.vision.pipeline import build_pipeline  # noqa: PLC0415
    from agent.vision.source import LiveSource, parse_source  # noqa: PLC0415

    cv2.setNumThreads(1)  # resizes are small; leave the cores to the detector
    now = time.monotonic()
    wall = time.time()
    # Intervals end on multiples of interval_s in UTC, so every box reports the same grid.
    start = now - (wall % config.interval_s)
    pipeline = build_pipeline(config, start_s=start)
    source = LiveSource(parse_source(config.source), fps_cap=config.fps_cap,
                        resize_width=config.resize_width, loop=config.loop,
                        reconnect_min_s=config.reconnect_min_s,
                        reconnect_max_s=config.reconnect_max_s).start()
    log.info("counting on %s", source.spec)
    meta = (("suppress_below", float(config.suppress_below)),) if config.suppress_below else ()
    connected: bool | None = None

    def utc_ms(t_s: float) -> int:
        return round((t_s + time.time() - time.monotonic()) * 1000)

    def send_intervals(reports: list[Any]) -> None:
        stats = source.stats()
        for report in reports:
            values = (*report.values(),
                      ("frames_dropped_total", stats.frames_dropped),
                      ("source_reconnects_total", stats.reconnects))
            output.put(CounterRecord("interval", on_grid(utc_ms(report.record.end_s),
                                                         config.interval_s),
                                     tuple(values), meta))

    try:
        while not should_stop():
            frame = source.get(POLL_S)
            stats = source.stats()
            if stats.connected != connected:
                connected = stats.connected
                output.put(CounterRecord("status", utc_ms(time.monotonic()),
                                         (("source_up", int(connected)),)))
                if pipeline.motion is not None:
                    pipeline.motion.reset()
            if frame is None:
                send_intervals(pipeline.tick(time.monotonic()))
                if stats.finished:
                    break
                continue
            result = pipeline.process(frame)
            for alert in result.counts.alerts:
                output.put(CounterRecord("alert", utc_ms(alert.t_s), (
                    (f"zone_{alert.zone}_density_alert", int(alert.on)),)))
            send_intervals(list(result.closed))
        send_intervals(pipeline.finish(time.monotonic()))
    finally:
        source.stop()
    return EXIT_FINISHED if source.stats().finished else 0


def on_grid(utc_ms: int, interval_s: float, tolerance_ms: int = 1000) -> int:
    """An interval end snapped to the UTC grid of ``interval_s`` when it is that close.

    The monotonic and the wall clock drift apart slowly (NTP slews the wall
    clock by up to 0.5 ms/s), so an end computed from the monotonic clock
    lands a few ms off the grid; receivers should see 12:05:00.000. Ends
    farther off (the partial interval at shutdown) are left as they are.
    """
    step = round(interval_s * 1000)
    nearest = round(utc_ms / step) * step
    return nearest if abs(utc_ms - nearest) <= min(tolerance_ms, step // 4) else utc_ms


# ---- the daemon side ----------------------------------------------------------------------


class CounterSupervisor:
    """Keeps one camera's counter process running and collects its measurements."""

    def __init__(self, camera_id: str, config: CameraConfig, *,
                 monotonic: Callable[[], float] = time.monotonic,
                 backoff_min_s: float = 1.0, backoff_max_s: float = 60.0,
                 stable_s: float = 60.0, log_level: str = "INFO",
                 target: Callable[..., None] = run_counter) -> None:
        self.camera_id = camera_id
        self.config = config
        self.output = MeasurementQueue()
        self.restarts = 0
        self.restart_waits: deque[float] = deque(maxlen=16)
        """The most recent waits before a restart (s), oldest first: the backoff as applied."""
        self.rejected = 0
        """Items from the child that were not a numbers-only CounterRecord (should stay 0)."""
        self.backoff_min_s, self.backoff_max_s, self.stable_s = \
            backoff_min_s, backoff_max_s, stable_s
        self._monotonic = monotonic
        self._log_level = log_level
        self._target = target
        self._context = multiprocessing.get_context("spawn")
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._process: Any = None
        self._source_up = False
        self._finished = False
        self._thread = threading.Thread(target=self._run, name=f"counter-{camera_id}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask the child to report its partial interval and leave; kill it if it does not."""
        self._stopping.set()
        self._thread.join(timeout_s)

    def drain(self) -> list[Measurement]:
        """Everything converted since the last call, in arrival order."""
        return self.output.drain()

    @property
    def alive(self) -> bool:
        with self._lock:
            return self._process is not None and self._process.is_alive()

    def health(self, utc_ms: int, monotonic_s: float) -> list[Measurement]:
        """The camera's lines in the heartbeat: up, source_up, restarts_total."""
        with self._lock:
            source_up = self._source_up and self._process is not None \
                and self._process.is_alive()
        return [Measurement(self.camera_id, name, float(value), "1", utc_ms, monotonic_s)
                for name, value in (("up", int(self.alive)),
                                    ("source_up", int(source_up)),
                                    ("restarts_total", self.restarts))]

    def _run(self) -> None:
        backoff = self.backoff_min_s
        while not self._stopping.is_set():
            started = self._monotonic()
            records, stop_child = self._spawn()
            while self.alive and not self._stopping.is_set():
                self._receive(records, POLL_S)
            if self._stopping.is_set():
                self._shut_down(records, stop_child)
                return
            self._receive(records, 0.0)
            records.close()
            code = self._process.exitcode
            if code == EXIT_FINISHED:
                log.info("camera %s: the video ended; counting stopped", self.camera_id)
                self._finished = True
                return
            with self._lock:
                self.restarts += 1
                self._source_up = False
            if self._monotonic() - started >= self.stable_s:
                backoff = self.backoff_min_s
            log.warning("camera %s: counter process exited with code %s; restart %d in %.1f s",
                        self.camera_id, code, self.restarts, backoff)
            self.restart_waits.append(backoff)
            if self._stopping.wait(backoff):
                return
            backoff = min(2 * backoff, self.backoff_max_s)

    def _spawn(self) -> tuple[Any, MpEvent]:
        records = self._context.Queue()
        stop_child = self._context.Event()
        process = self._context.Process(
            target=self._target, name=f"lokaalmeten-counter-{self.camera_id}", daemon=True,
            args=(ChildSpec(self.camera_id, self.config.model_dump(mode="json"), os.getpid(),
                            self._log_level), records, stop_child))
        process.start()
        with self._lock:
            self._process = process
        log.info("camera %s: counter process %d started", self.camera_id, process.pid)
        return records, stop_child

    def _receive(self, records: Any, timeout_s: float) -> None:
        """Move whatever the child sent onto ``output``; wait up to ``timeout_s`` for the first."""
        wait = timeout_s
        while True:
            try:
                item = records.get(timeout=wait) if wait > 0 else records.get(timeout=0.05)
            except (queue.Empty, EOFError, OSError):
                return
            wait = 0.0
            if not is_numbers_only(item):
                self.rejected += 1
                log.error("camera %s: discarded a non-numeric item from the counter process",
                          self.camera_id)
                continue
            if item.kind == "status":
                with self._lock:
                    self._source_up = dict(item.values).get("source_up", 0) == 1
            measurements = to_measurements(self.camera_id, item, self._monotonic())
            if measurements:
                self.output.put(measurements)

    def _shut_down(self, records: Any, stop_child: MpEvent, grace_s: float = 8.0) -> None:
        stop_child.set()
        deadline = time.monotonic() + grace_s
        while self.alive and time.monotonic() < deadline:
            self._receive(records, POLL_S)
        if self.alive:
            log.warning("camera %s: counter process did not stop; killing it", self.camera_id)
            self._process.kill()
            self._process.join(2.0)
        self._receive(records, 0.0)
        records.close()
