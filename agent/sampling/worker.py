"""One thread per sensor: schedule, read, control, aggregate, recover.

Each sensor runs on its own thread so a failing or hanging device can only
delay itself. Failures escalate: retry once at once (a checksum hit by line
noise), soft reset after ``reset_after_failures`` consecutive failures, and
close and reopen the bus after ``reopen_after_failures`` (a USB adapter that
was unplugged and replugged). Anything unexpected beyond that (a bug, an
untranslated library error) is caught by the worker's
:class:`agent.supervision.SupervisedThread`: logged with its traceback, counted in
``crashes``, the bus released, and the loop restarted after a backoff; a sensor
worker is never given up on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from agent.clock import SYSTEM, Clock
from agent.config.sensors import ResolvedSensor
from agent.errors import AgentError, BusError, DataNotReady
from agent.models import Measurement, Quality, Reading
from agent.sampling.quality import check_reading
from agent.sampling.schedule import Schedule
from agent.sampling.window import Identity, Window
from agent.sensors.base import DutyCycled, Identifiable, SensorDriver
from agent.supervision import RestartPolicy, SupervisedThread

__all__ = ["Clock", "Opener", "SensorHealth", "SensorWorker"]

log = logging.getLogger(__name__)

MIN_SLEEP_S = 10.0
"""Duty cycling only pays off when the device can sleep at least this long."""

BEAT_S = 5.0
"""Longest sleep between heartbeats, so a long interval never looks like a hung thread."""

RESTARTS = RestartPolicy(first_delay_s=1.0, max_delay_s=60.0)

Opened = tuple[SensorDriver, Callable[[], None]]
Opener = Callable[[ResolvedSensor], Opened]
Sink = Callable[[list[Measurement]], None]


@dataclass(frozen=True)
class SensorHealth:
    """A snapshot of one sensor's state for the heartbeat."""

    sensor_id: str
    model: str
    state: str = "starting"
    consecutive_failures: int = 0
    errors_total: int = 0
    not_ready_total: int = 0
    frames_rejected: int = 0
    bytes_discarded: int = 0
    resets: int = 0
    reopens: int = 0
    missed_slots: int = 0
    samples_dropped: int = 0
    last_success_utc_ms: int | None = None
    last_error: str = ""
    heartbeat_monotonic: float = 0.0
    crashes: int = 0
    """Unexpected exceptions that ended the sampling loop (each followed by a restart)."""
    measurement_restarts: int = 0
    """Measurement restarted after ``restart_after_not_ready`` slots without fresh data."""
    identity: tuple[tuple[str, str], ...] = ()
    """What the device said of itself (serial, firmware) when opened; () if it cannot say."""


class SensorWorker:
    """Samples one sensor on a thread of its own until :meth:`stop`, handing finished
    measurements to ``sink``."""

    def __init__(self, sensor: ResolvedSensor, opener: Opener, sink: Sink,
                 clock: Clock | None = None) -> None:
        self.sensor = sensor
        self._opener = opener
        self._sink = sink
        self._clock = clock or SYSTEM
        """Schedules, stamps and every wait (a test's clock makes them cost nothing)."""
        self._thread = SupervisedThread(f"sensor-{sensor.sensor_id}", self._loop, RESTARTS,
                                        self._crashed, clock=self._clock,
                                        on_exit=self._finish)
        self._stop_event = self._thread.stopping
        self._lock = threading.Lock()
        self._health = SensorHealth(sensor.sensor_id, sensor.profile.model)
        self._driver: SensorDriver | None = None
        self._close_bus: Callable[[], None] = lambda: None
        self._rejected_before = 0
        self._discarded_before = 0
        self._warm_until = 0.0
        self._not_ready_streak = 0
        self._asleep = False
        profile = sensor.profile
        units = {q.name: q.unit for q in profile.quantities}
        meta = {name: (("calibration_offset", cal.offset), ("calibration_scale", cal.scale))
                for name, cal in sensor.config.calibration.items()}
        self._aggregate = sensor.window_s > sensor.interval_s
        rules = {q.name: q.aggregation for q in profile.quantities}
        self._window = Window(Identity(sensor.sensor_id, units, meta, rules), sensor.window_s,
                              self._aggregate)

    # -- public -----------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the loop to end; it emits its partial window and stops its sensor first."""
        self._stop_event.set()

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait up to ``timeout_s`` for the worker to end; True when it has."""
        return self._thread.join(timeout_s)

    def health(self) -> SensorHealth:
        with self._lock:
            driver = self._driver
            rejected = self._rejected_before + (driver.frames_rejected if driver else 0)
            discarded = self._discarded_before + (driver.bytes_discarded if driver else 0)
            return replace(self._health, frames_rejected=rejected, bytes_discarded=discarded)

    # -- thread -----------------------------------------------------------------

    def _loop(self) -> None:
        now = self._clock.monotonic()
        schedule = Schedule(now, self.sensor.interval_s)
        window_end = now + self.sensor.window_s
        self._window.open(now)
        slot = now
        while not self._stop_event.is_set():
            self._beat()
            if self._driver is None and not self._open():
                slot = self._advance(schedule, slot)
                window_end = self._wait_until(slot, window_end)
                continue
            if self._duty_cycling():
                window_end = self._wait_until(slot - self.sensor.profile.wake_lead_s, window_end)
                if self._stop_event.is_set():
                    break
                self._wake()
            window_end = self._wait_until(slot, window_end)
            if self._stop_event.is_set():
                break
            self._sample()
            slot = self._advance(schedule, slot)
            if self._duty_cycling() and slot - self._clock.monotonic() > \
                    self.sensor.profile.wake_lead_s + MIN_SLEEP_S:
                self._sleep()

    def _crashed(self, exc: Exception) -> None:
        """Count the crash and release the bus: the restarted loop opens it afresh."""
        self._update(state="failing", crashes=self._health.crashes + 1,
                     last_error=f"crashed: {exc!r}"[:200])
        self._release()

    def _finish(self) -> None:
        """On the way out: the partial window goes out, the sensor is stopped."""
        self._emit()
        self._shutdown()

    # -- steps ------------------------------------------------------------------

    def _beat(self) -> None:
        self._update(heartbeat_monotonic=self._clock.monotonic())

    def _advance(self, schedule: Schedule, slot: float) -> float:
        nxt, missed = schedule.next_slot(slot, self._clock.monotonic())
        if missed:
            self._update(missed_slots=self._health.missed_slots + missed)
        return nxt

    def _wait_until(self, deadline: float, window_end: float) -> float:
        """Sleep until ``deadline``, closing aggregation windows that end meanwhile."""
        while not self._stop_event.is_set():
            now = self._clock.monotonic()
            if self._aggregate and now >= window_end:
                self._emit()
                window_end += self.sensor.window_s * max(
                    1, int((now - window_end) // self.sensor.window_s) + 1)
                self._window.open(window_end - self.sensor.window_s)
            if now >= deadline:
                break
            wake_at = min(deadline, window_end) if self._aggregate else deadline
            self._clock.wait(self._stop_event, min(BEAT_S, max(0.0, wake_at - now)))
            self._beat()
        return window_end

    def _open(self) -> bool:
        try:
            driver, close = self._opener(self.sensor)
        except AgentError as exc:
            self._failed(exc)
            return False
        known = bool(self._health.identity)
        identity = () if known else _identity(driver)  # some answer only when idle ...
        try:
            driver.start()
        except AgentError as exc:
            close()
            self._failed(exc)
            return False
        if not known and not identity:
            identity = _identity(driver)  # ... others only when measuring
        if identity:
            self._update(identity=identity)
        with self._lock:
            self._driver, self._close_bus = driver, close
        self._warm_until = self._clock.monotonic() + self.sensor.warmup_s
        self._asleep = False
        self._update(state="warming_up" if self.sensor.warmup_s else "ok")
        log.info("%s: %s started", self.sensor.sensor_id, self.sensor.profile.model)
        return True

    def _duty_cycling(self) -> bool:
        lead = self.sensor.profile.wake_lead_s
        return (self._driver is not None and isinstance(self._driver, DutyCycled)
                and self.sensor.config.duty_cycle and lead > 0
                and self.sensor.interval_s >= lead + MIN_SLEEP_S)

    def _wake(self) -> None:
        if not self._asleep or self._driver is None:
            return
        try:
            self._driver.wake()  # type: ignore[attr-defined]  # checked by _duty_cycling
        except AgentError as exc:
            self._failed(exc)
            return
        self._asleep = False
        self._warm_until = self._clock.monotonic() + self.sensor.warmup_s

    def _sleep(self) -> None:
        try:
            self._driver.sleep()  # type: ignore[union-attr]  # checked by _duty_cycling
            self._asleep = True
        except AgentError as exc:
            log.warning("%s: could not put sensor to sleep: %s", self.sensor.sensor_id, exc)

    def _sample(self) -> None:
        driver = self._driver
        assert driver is not None
        try:
            readings = self._read_with_retry(driver)
        except DataNotReady as exc:
            self._not_ready(exc)
            return
        except AgentError as exc:
            self._failed(exc)
            return
        except Exception as exc:  # a driver bug must not kill the thread
            log.exception("%s: unexpected driver error", self.sensor.sensor_id)
            self._failed(exc)
            return
        self._accept(readings)

    def _not_ready(self, exc: DataNotReady) -> None:
        """Count a slot without fresh data; a long streak restarts the measurement.

        A Sensirion sensor that browned out comes back idle and answers "not
        ready" for ever: after ``restart_after_not_ready`` such slots (warm-up
        excluded) its measurement is started again, and the streak counts as
        one failure, so a reset and a reopen follow if that does not help.
        """
        self._not_ready_streak += 1
        self._update(not_ready_total=self._health.not_ready_total + 1)
        limit = self.sensor.config.restart_after_not_ready
        if self._not_ready_streak < limit or self._clock.monotonic() < self._warm_until:
            return
        self._not_ready_streak = 0
        log.warning("%s: no fresh data for %d slots; restarting its measurement",
                    self.sensor.sensor_id, limit)
        self._update(measurement_restarts=self._health.measurement_restarts + 1)
        try:
            self._driver.start()  # type: ignore[union-attr]  # _sample holds a driver
        except AgentError as start_exc:
            log.warning("%s: restart failed: %s", self.sensor.sensor_id, start_exc)
        self._failed(DataNotReady(f"no fresh data for {limit} slots ({exc})"))

    def _read_with_retry(self, driver: SensorDriver) -> list[Reading]:
        """One immediate retry after a bus-level fault; success is flagged ``retried``."""
        try:
            return driver.read()
        except BusError as exc:
            log.debug("%s: retrying after %s", self.sensor.sensor_id, exc)
            self._update(errors_total=self._health.errors_total + 1, last_error=str(exc))
            readings = driver.read()
            return [replace(r, flags=r.flags | {Quality.RETRIED}) for r in readings]

    def _accept(self, readings: list[Reading]) -> None:
        warming = self._clock.monotonic() < self._warm_until
        profile = self.sensor.profile
        dropped = 0
        for reading in readings:
            checked = check_reading(reading, profile.quantity(reading.quantity),
                                    warming_up=warming,
                                    calibration=self.sensor.config.calibration.get(
                                        reading.quantity))
            if checked is None:
                dropped += 1
            else:
                self._window.add(checked)
        self._not_ready_streak = 0
        self._update(state="warming_up" if warming else "ok", consecutive_failures=0,
                     last_success_utc_ms=self._clock.wall_ms(),
                     samples_dropped=self._health.samples_dropped + dropped)
        if not self._aggregate:
            self._emit()

    def _emit(self) -> None:
        if len(self._window):
            self._sink(self._window.close(self._clock.wall_ms(), self._clock.monotonic()))

    def _failed(self, exc: BaseException) -> None:
        health = self._health
        failures = health.consecutive_failures + 1
        self._update(state="failing", consecutive_failures=failures,
                     errors_total=health.errors_total + 1, last_error=str(exc)[:200])
        log.warning("%s: failure %d: %s", self.sensor.sensor_id, failures, exc)
        config = self.sensor.config
        if self._driver is None:
            return
        if failures % config.reopen_after_failures == 0:
            log.warning("%s: reopening its bus", self.sensor.sensor_id)
            self._update(reopens=self._health.reopens + 1)
            self._release()
        elif failures % config.reset_after_failures == 0:
            log.warning("%s: soft reset", self.sensor.sensor_id)
            self._update(resets=self._health.resets + 1)
            try:
                self._driver.reset()
                self._warm_until = self._clock.monotonic() + self.sensor.warmup_s
            except Exception as reset_exc:  # a failed reset escalates to a reopen later
                log.warning("%s: reset failed: %s", self.sensor.sensor_id, reset_exc)

    def _release(self) -> None:
        with self._lock:
            driver, close = self._driver, self._close_bus
            self._driver, self._close_bus = None, lambda: None
            if driver is not None:
                self._rejected_before += driver.frames_rejected
                self._discarded_before += driver.bytes_discarded
        close()

    def _shutdown(self) -> None:
        if self._driver is not None:
            try:
                self._driver.stop()
            except Exception as exc:  # best effort on the way out
                log.info("%s: stop failed: %s", self.sensor.sensor_id, exc)
        self._release()
        self._update(state="stopped")

    def _update(self, **changes: object) -> None:
        with self._lock:
            self._health = replace(self._health, **changes)  # type: ignore[arg-type]


def _identity(driver: SensorDriver) -> tuple[tuple[str, str], ...]:
    """Serial number and firmware, if the driver can ask without changing anything; a
    device that does not answer now is no failure (the birth message just lacks them)."""
    if not isinstance(driver, Identifiable):
        return ()
    try:
        return tuple(sorted((str(k), str(v)) for k, v in driver.identify().items()))
    except AgentError as exc:
        log.debug("%s does not identify itself now: %s", type(driver).__name__, exc)
        return ()
