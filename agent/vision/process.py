"""The daemon side of a camera: the supervisor that runs its counter process.

Privacy boundary: frames exist only inside the counter process
(``agent.vision.child``). What crosses is a pipe of counter records
(``agent.vision.record``): a fixed binary format whose quantity names come
from the camera's configuration. The supervisor reads at most one record's
worth of bytes at a time, decodes and checks every record, and on anything
it does not admit counts it (``records_rejected_total``), kills that counter
process and starts a fresh one.

``CounterSupervisor`` (on a :class:`agent.supervision.SupervisedThread`, as every
worker of the daemon) has the zygote (``agent.vision.zygote``) fork the child, which
holds the camera group the daemon gave up, turns its records into ``Measurement``s on
``output`` for the main loop, and restarts a child that died by the same restart loop
as every thread of the daemon: a wait that doubles from ``backoff_min_s`` to
``backoff_max_s`` (back to the minimum once a child has run ``stable_s``).

A child can also hang while alive: stuck in a camera read the source's own timeout
does not cover, or in the detector. A counter sends a record at least every interval
(an interval closes even without frames), so one that has sent nothing for
:func:`hang_after_s` of its interval is killed and restarted like a dead one, and
counted in ``hangs_total``. Restarts, hangs and rejections show in the heartbeat.

This module imports neither OpenCV nor onnxruntime: the child loads them,
so a daemon without cameras never does.
"""

from __future__ import annotations

import logging
import threading
from multiprocessing.connection import Connection, Pipe

from agent.clock import SYSTEM, Clock
from agent.config.camera import CameraConfig
from agent.models import Measurement, MeasurementQueue
from agent.supervision import Restart, RestartPolicy, SupervisedThread
from agent.vision.child import EXIT_FINISHED, POLL_S
from agent.vision.record import Gate, Kind, Record, RecordRejected, Schema, schema_for
from agent.vision.setup_session import SetupSession
from agent.vision.zygote import ChildSpec, Counter, Zygote

log = logging.getLogger(__name__)

START_ALLOWANCE_S = 30.0
"""Time a counter may take beyond its intervals to load its model and open its camera."""


STOP_GRACE_S = 2.0
"""A counter that left on a SIGTERM (exit 0) is restarted only if the daemon is not
stopping within this long: systemd (and Ctrl-C) signal every process of the unit at once,
so the counter often ends first."""


def hang_after_s(interval_s: float) -> float:
    """How long a live counter may send nothing before it counts as hung.

    It closes an interval every ``interval_s`` (with or without frames), so two
    intervals plus the start-up allowance: a slow Pi is never mistaken for a hang.
    """
    return 2 * interval_s + START_ALLOWANCE_S

_FIXED_UNITS = {
    "fps": "/s", "fps_target": "/s", "inference_ms_p50": "ms", "inference_ms_p95": "ms",
    "frames": "{frame}", "frames_inferred": "{frame}", "frames_dropped_total": "{frame}",
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


def to_measurements(camera_id: str, record: Record, monotonic_s: float,
                    suppress_below: int = 0, interval_s: float | None = None
                    ) -> list[Measurement]:
    """The measurements an interval or alert record stands for (status records: none).

    An interval's ``suppress_below`` (the daemon's own setting, not the
    counter's say) travels as meta on its ``frames`` measurement, which is
    always present. Interval values carry the time they cover: ``interval_s``, or for
    a partial interval (the last one, at a stop) from its start on the grid to its end.
    """
    if record.kind is Kind.STATUS:
        return []
    meta = (("suppress_below", float(suppress_below)),) if suppress_below else ()
    window = None
    if record.kind is Kind.INTERVAL and interval_s is not None:
        step_ms = round(interval_s * 1000)
        window = (record.utc_ms % step_ms or step_ms) / 1000
    return [Measurement(camera_id, name, value, unit_of(name), record.utc_ms, monotonic_s,
                        meta=meta if name == "frames" else (), window_s=window)
            for name, value in record.values]


# ---- the daemon side ----------------------------------------------------------------------


class CounterSupervisor:
    """Keeps one camera's counter process running and collects its measurements."""

    def __init__(self, camera_id: str, config: CameraConfig, *, clock: Clock = SYSTEM,
                 backoff_min_s: float = 1.0, backoff_max_s: float = 60.0,
                 stable_s: float = 60.0, hang_s: float | None = None, log_level: str = "INFO",
                 zygote: Zygote | None = None, setup: SetupSession | None = None) -> None:
        self.camera_id = camera_id
        self.config = config
        self.schema: Schema = schema_for(config)
        self.output = MeasurementQueue()
        self.restarts = 0
        self.hangs = 0
        """Counter processes killed for sending nothing for ``hang_s`` while alive."""
        self.rejected = 0
        """Records the boundary refused (each one cost the counter process its life)."""
        self.setup = setup or SetupSession()
        """Set-up mode (``agent.vision.setup_session``): off until the page switches it on."""
        self.policy = RestartPolicy(first_delay_s=backoff_min_s, max_delay_s=backoff_max_s,
                                    healthy_after_s=stable_s)
        self.hang_s = hang_after_s(config.interval_s) if hang_s is None else hang_s
        self._clock = clock
        self._log_level = log_level
        self._zygote = zygote or Zygote.shared()
        self._lock = threading.Lock()
        self._process: Counter | None = None
        self._source_up = False
        self._thread = SupervisedThread(f"camera {camera_id}", self._life, self.policy,
                                        self._ended, clock=clock)
        self._stopping = self._thread.stopping

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
        """The camera's lines in the heartbeat: up, source_up, restarts, hangs, rejected
        records."""
        with self._lock:
            source_up = self._source_up and self._process is not None \
                and self._process.is_alive()
        return [Measurement(self.camera_id, name, float(value), "1", utc_ms, monotonic_s)
                for name, value in (("up", int(self.alive)),
                                    ("source_up", int(source_up)),
                                    ("restarts_total", self.restarts),
                                    ("hangs_total", self.hangs),
                                    ("records_rejected_total", self.rejected))]

    def _ended(self, reason: Exception) -> None:
        """A counter process died, hung or was replaced: count it before the backoff."""
        with self._lock:
            self.restarts += 1
            self._source_up = False

    def _life(self) -> None:
        """One counter process from start to end; returns only when it need not be
        restarted (stopping, or its video ended), else raises :class:`Restart`."""
        started = self._clock.monotonic()
        reader = self._spawn()
        if reader is None:
            raise Restart("the counter process could not be started")
        assert self._process is not None
        gate = Gate(self.schema, started, now_s=self._clock.monotonic,
                    wall_ms=self._clock.wall_ms)
        admitted, heard = True, started
        while admitted and self.alive and not self._stopping.is_set():
            self._renew_setup()
            admitted, got = self._receive(reader, gate, POLL_S)
            now = self._clock.monotonic()
            heard = now if got else heard
            if admitted and now - heard > self.hang_s:
                with self._lock:
                    self.hangs += 1
                self._kill()
                reader.close()
                raise Restart(f"counter process alive but silent for {now - heard:.0f} s "
                              f"(hang {self.hangs})")
        if self._stopping.is_set():
            self._shut_down(reader, gate)
            return
        if admitted:
            admitted, _ = self._receive(reader, gate, 0.0)
        if not admitted:
            self._kill()
        reader.close()
        code = self._process.exitcode
        if code == EXIT_FINISHED and admitted:
            log.info("camera %s: the video ended; counting stopped", self.camera_id)
            return
        if code == 0 and self._clock.wait(self._stopping, STOP_GRACE_S):
            return  # asked to stop like the daemon, by one SIGTERM to both: a normal stop
        raise Restart(f"counter process exited with code {code}")

    def _spawn(self) -> Connection | None:
        """Have the zygote start a counter process; the read end of its record pipe, or
        None when it could not be started (logged; the caller retries after a wait)."""
        reader, writer = Pipe(duplex=False)
        try:
            with writer:  # the child holds the only write end: its exit ends the stream
                process = self._zygote.launch(
                    ChildSpec(self.camera_id, self.config.model_dump(mode="json"),
                              self._log_level), writer)
        except OSError as exc:
            reader.close()
            log.error("camera %s: cannot start a counter process: %s", self.camera_id, exc)
            return None
        self.setup.forget()
        with self._lock:
            previous, self._process = self._process, process
        if previous is not None:
            previous.close()
        log.info("camera %s: counter process %d started", self.camera_id, process.pid)
        return reader

    def _receive(self, reader: Connection, gate: Gate, timeout_s: float) -> tuple[bool, bool]:
        """Admit whatever the child sent, waiting up to ``timeout_s`` for the first record.

        Returns (admitted, any record came); admitted is False after a record was
        refused: the caller kills the child.
        """
        wait, got = timeout_s, False
        while True:
            try:
                if not reader.poll(wait):
                    return True, got
                data = reader.recv_bytes(self.schema.max_size)
            except EOFError:
                return True, got  # the child closed its end: it is leaving
            except OSError:  # longer than any record may be: not read, not kept
                return self._refuse(RecordRejected("a record longer than the schema allows")), got
            wait, got = 0.0, True
            try:
                record = gate.admit(self.schema.decode(data))
                if record.kind is Kind.SETUP:  # for the page only, never a measurement
                    self.setup.admit(record, self._clock.monotonic())
                    continue
            except RecordRejected as exc:
                return self._refuse(exc), got
            if record.kind is Kind.STATUS:
                with self._lock:
                    self._source_up = record.values[0][1] == 1
            measurements = to_measurements(self.camera_id, record, self._clock.monotonic(),
                                           self.config.suppress_below, self.config.interval_s)
            if measurements:
                self.output.put(measurements)

    def _renew_setup(self) -> None:
        """While a set-up session lasts, keep the counter's lease on (a signal, no data)."""
        if self.setup.renew_due(self._clock.monotonic()):
            with self._lock:
                process = self._process
            if process is not None:
                process.renew_setup()

    def _refuse(self, reason: RecordRejected) -> bool:
        with self._lock:
            self.rejected += 1
        log.error("camera %s: refused a record from the counter process (%s); replacing the "
                  "process", self.camera_id, reason)
        return False

    def _kill(self) -> None:
        assert self._process is not None
        self._process.kill()
        self._process.join(5.0)

    def _shut_down(self, reader: Connection, gate: Gate, grace_s: float = 8.0) -> None:
        """SIGTERM: the child reports its partial interval and leaves; killed if it does not."""
        assert self._process is not None
        self._process.terminate()
        deadline = self._clock.monotonic() + grace_s
        admitted = True
        while admitted and self.alive and self._clock.monotonic() < deadline:
            admitted, _ = self._receive(reader, gate, POLL_S)
        if admitted:
            self._receive(reader, gate, 0.0)
        if self.alive:
            if admitted:
                log.warning("camera %s: counter process did not stop; killing it",
                            self.camera_id)
            self._kill()
        reader.close()
