"""The composition root: config in, a running agent out. Only this module sees everything."""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import uuid
from dataclasses import dataclass
from types import FrameType
from typing import Any

from pydantic import TypeAdapter, ValidationError

from agent import __version__
from agent.bus.provider import BusProvider
from agent.config import AgentConfig, ResolvedSensor
from agent.config.errors import problems_from
from agent.errors import ConfigError, StorageError
from agent.health import systemd
from agent.health.heartbeat import AGENT_SENSOR_ID, AgentStatus, SensorStatus, heartbeat
from agent.health.system import read_system
from agent.models import Measurement
from agent.publish.forwarder import Forwarder
from agent.redact import redact_text
from agent.sampling import Sampler, SensorHealth
from agent.sampling.humidity import HumidityCorrector, HumidityRule
from agent.sampling.worker import Clock, Opened, Opener
from agent.sensors import DriverSpec, registry
from agent.sensors.base import BusKind
from agent.status.facts import BoxFacts, CameraFacts, SensorFacts
from agent.status.service import StatusService
from agent.storage import Outbox
from agent.storage.space import DiskSpace
from agent.vision.process import CounterSupervisor

log = logging.getLogger(__name__)

ACK_FLUSH_ROWS = 2000
"""Acknowledged rows that make the main loop commit before ``commit_interval_s``."""

LOOP_PERIOD_S = 0.2


def driver_options(sensor_id: str, spec: DriverSpec, options: dict[str, Any],
                   source: str) -> Any:
    """Validate a sensor's ``options`` table against its driver's options dataclass."""
    prefix = f"sensors.{sensor_id}.options"
    known = {f.name for f in dataclasses.fields(spec.options_type)}
    unknown = sorted(set(options) - known)
    problems = [(f"{prefix}.{key}", f"unknown option for {spec.model} "
                 f"(known: {', '.join(sorted(known)) or 'none'})") for key in unknown]
    if problems:
        raise ConfigError(source, problems)
    try:
        return TypeAdapter(spec.options_type).validate_python(options)
    except ValidationError as exc:
        raise ConfigError(source, problems_from(exc, prefix)) from exc


@dataclass(frozen=True)
class Plan:
    """A validated config with each sensor's driver spec and options resolved."""

    config: AgentConfig
    sensors: list[ResolvedSensor]
    drivers: dict[str, tuple[DriverSpec, Any]]


def plan(config: AgentConfig, source: str) -> Plan:
    """Everything ``check-config`` verifies beyond the schema: drivers exist, options fit."""
    specs = registry()
    sensors = config.resolved_sensors()
    drivers: dict[str, tuple[DriverSpec, Any]] = {}
    problems: list[tuple[str, str]] = []
    for sensor in sensors:
        spec = specs.get(sensor.profile.driver_name)
        if spec is None:
            problems.append((f"sensors.{sensor.sensor_id}.model",
                             f"no driver registered for {sensor.profile.driver_name!r}"))
            continue
        options = {**sensor.profile.driver_options, **sensor.config.options}
        try:
            drivers[sensor.sensor_id] = (
                spec, driver_options(sensor.sensor_id, spec, options, source))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(source, problems)
    return Plan(config, sensors, drivers)


def sensor_opener(the_plan: Plan, buses: BusProvider) -> Opener:
    """How a worker (re)opens its sensor: open the bus, build the driver."""

    def open_sensor(sensor: ResolvedSensor) -> Opened:
        spec, options = the_plan.drivers[sensor.sensor_id]
        if spec.bus is BusKind.SERIAL:
            assert sensor.config.port is not None and sensor.baudrate is not None
            link = buses.serial(sensor.config.port, sensor.baudrate, sensor.config.timeout_s)
            return spec.build(link, options), link.close
        if spec.bus is BusKind.AUDIO:
            # The meter's interval is the sampling interval: one interval per read.
            assert sensor.config.device is not None
            options = dataclasses.replace(options, interval_s=sensor.interval_s)
            source = buses.audio(sensor.config.device, options.sample_rate,
                                 channel=options.channel, block_s=options.block_s)
            return spec.build(source, options), source.close
        assert sensor.address is not None
        return spec.build(buses.i2c(sensor.bus, sensor.address), options), lambda: None

    return open_sensor


def _sensor_status(health: SensorHealth, now_ms: int, now_monotonic: float,
                   stall_after_s: float) -> SensorStatus:
    age = None if health.last_success_utc_ms is None else \
        max(0.0, (now_ms - health.last_success_utc_ms) / 1000)
    stalled = now_monotonic - health.heartbeat_monotonic > stall_after_s
    return SensorStatus(
        health.sensor_id, health.state in {"ok", "warming_up"} and not stalled, stalled,
        health.consecutive_failures, health.errors_total, health.frames_rejected,
        health.not_ready_total, health.missed_slots, health.samples_dropped, health.resets,
        health.reopens, age, health.crashes, health.measurement_restarts,
        health.bytes_discarded)


def humidity_rules(sensors: list[ResolvedSensor]) -> list[HumidityRule]:
    """One rule per PM sensor with a ``humidity`` section; RH older than two windows is stale."""
    windows = {s.sensor_id: s.window_s for s in sensors}
    rules = []
    for sensor in sensors:
        humidity = sensor.config.humidity
        if humidity is not None and humidity.source in windows:
            longest = max(sensor.window_s, windows[humidity.source])
            rules.append(HumidityRule(sensor.sensor_id, humidity.source,
                                      humidity.threshold_percent, humidity.kappa,
                                      int(2000 * longest), humidity.growth))
    return rules


class Agent:
    """Runs sampler, outbox and forwarder until stopped; then shuts down in order."""

    def __init__(self, the_plan: Plan, buses: BusProvider, *, boot_id: str | None = None,
                 clock: Clock | None = None) -> None:
        self.plan = the_plan
        self.config = the_plan.config
        self.boot_id = boot_id or uuid.uuid4().hex
        self._clock = clock or Clock()
        self._stop = threading.Event()
        self._started = self._clock.monotonic()
        storage = self.config.storage
        self.outbox = Outbox(storage.path, self.boot_id, max_rows=storage.max_rows,
                             max_age_days=storage.max_age_days, wall_ms=self._clock.wall_ms,
                             space=DiskSpace(storage.path.parent,
                                             min_free_mb=storage.min_free_mb,
                                             reserve_mb=storage.reserve_mb))
        self.sampler = Sampler(the_plan.sensors, sensor_opener(the_plan, buses), self._clock)
        self.forwarder = Forwarder(self.outbox, self.config.mqtt, self.config.device_id,
                                   self.config.client_id)
        self._humidity = HumidityCorrector(humidity_rules(the_plan.sensors))
        # One counter process per camera; OpenCV and ONNX Runtime load only in those.
        self.counters = [CounterSupervisor(camera_id, camera, monotonic=self._clock.monotonic,
                                           log_level=self.config.log_level)
                         for camera_id, camera in self.config.cameras.items() if camera.enabled]
        # The local status page, its history and the periodic log summary (agent/status).
        self.status = StatusService(
            self.config.status, self.config.health, storage.path.parent, self._status_facts,
            {(s.sensor_id, q.name): q.aggregation.value
             for s in the_plan.sensors for q in s.profile.quantities},
            cameras=[c.camera_id for c in self.counters], wall_ms=self._clock.wall_ms,
            monotonic=self._clock.monotonic)

    def request_stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        def handle(signum: int, frame: FrameType | None) -> None:
            log.info("received %s; shutting down", signal.Signals(signum).name)
            self.request_stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def run(self) -> int:
        """The main loop; returns the process exit code."""
        log.info("agent %s starting (boot %s, %d sensors, %d cameras)", self.config.device_id,
                 self.boot_id, len(self.plan.sensors), len(self.counters))
        for key, reason in self.config.warnings():
            log.warning("config: %s: %s", key, reason)
        self.outbox.add(self._previous_boot())
        self.sampler.start()
        for counter in self.counters:
            counter.start()
        self.forwarder.start()
        self.status.start()
        systemd.notify("READY=1\nSTATUS=sampling")
        watchdog_every = systemd.watchdog_interval_s()
        commit_every = self.config.storage.commit_interval_s
        heartbeat_every = self.config.health.interval_s
        now = self._clock.monotonic()
        last_commit = last_ping = now
        next_heartbeat = now + min(heartbeat_every, 10.0)
        healthy = True
        while not self._stop.wait(LOOP_PERIOD_S):
            if self.forwarder.gave_up:
                log.critical("the forwarder kept crashing; exiting so systemd restarts the agent")
                self._shutdown()
                return 1
            now = self._clock.monotonic()
            data = self._humidity.apply(self.sampler.drain()) + self._drain_counters()
            self.outbox.add(data)
            self.status.observe(data)
            self.status.tick(now)
            if now >= next_heartbeat:
                self.outbox.add(self._heartbeat())
                next_heartbeat = now + heartbeat_every
            # A backlog drains at thousands of rows a second: commit its acks sooner, so a
            # crash re-sends at most ACK_FLUSH_ROWS of what the broker already has.
            if now - last_commit >= commit_every or \
                    self.outbox.acks_waiting() >= ACK_FLUSH_ROWS:
                healthy = self._commit()
                last_commit = now
            if watchdog_every is not None and healthy and now - last_ping >= watchdog_every:
                systemd.notify("WATCHDOG=1")
                last_ping = now
        return self._shutdown()

    def _commit(self) -> bool:
        try:
            if self.outbox.commit():
                self.forwarder.notify()
        except StorageError as exc:
            log.error("%s", exc)
            return False
        return True

    def _heartbeat(self) -> list[Any]:
        now_ms = self._clock.wall_ms()
        stats = self.outbox.stats()
        forwarder = self.forwarder.stats()
        status = AgentStatus(
            uptime_s=self._clock.monotonic() - self._started, outbox_depth=stats.depth,
            outbox_dropped_total=stats.dropped_total, mqtt_connected=forwarder.connected,
            mqtt_connects=forwarder.connects, messages_sent=forwarder.messages_sent,
            counter_restarts=sum(c.restarts for c in self.counters),
            forwarder_crashes=forwarder.crashes, outbox_quarantined=stats.quarantined_total,
            outbox_poison=stats.poison_total)
        sensors = [_sensor_status(h, now_ms, self._clock.monotonic(),
                                  self.config.health.stall_after_s)
                   for h in self.sampler.health()]
        cameras = [m for c in self.counters for m in c.health(now_ms, self._clock.monotonic())]
        return heartbeat(status, read_system(self.config.storage.path.parent), sensors,
                         now_ms, self._clock.monotonic()) + cameras

    def _status_facts(self) -> BoxFacts:
        """The agent's state for the status page and the log summary (any thread)."""
        now_ms, now = self._clock.wall_ms(), self._clock.monotonic()
        stats, forwarder = self.outbox.stats(), self.forwarder.stats()
        names = {s.sensor_id: s.profile.name for s in self.plan.sensors}
        sensors = []
        for health in self.sampler.health():
            status = _sensor_status(health, now_ms, now, self.config.health.stall_after_s)
            sensors.append(SensorFacts(
                health.sensor_id, health.model, names.get(health.sensor_id, health.model),
                health.state, status.up, status.stalled, health.consecutive_failures,
                health.errors_total, health.frames_rejected, health.not_ready_total,
                health.last_success_utc_ms, health.last_error))
        cameras = []
        for counter in self.counters:
            lines = {m.quantity: m.value for m in counter.health(now_ms, now)}
            cameras.append(CameraFacts(
                counter.camera_id, lines.get("up") == 1, lines.get("source_up") == 1,
                int(lines.get("restarts_total", 0)), int(lines.get("records_rejected_total", 0))))
        return BoxFacts(
            self.config.device_id, self.boot_id, __version__, now_ms, now - self._started,
            self.config.mqtt.host, self.config.mqtt.port, forwarder.connected,
            forwarder.connects, forwarder.messages_sent, forwarder.measurements_acked,
            redact_text(forwarder.last_error), stats.depth, stats.dropped_total,
            stats.quarantined_total, self.config.storage.min_free_mb,
            read_system(self.config.storage.path.parent), tuple(sensors), tuple(cameras))

    def _previous_boot(self) -> list[Measurement]:
        """Where the previous agent start's numbering ended: its stored stream is complete
        up to that seq, so a receiver can tell a gap from the crash-loss window."""
        previous = self.outbox.previous_boot()
        if previous is None:
            return []
        boot_id, last_seq = previous
        return [Measurement(AGENT_SENSOR_ID, "previous_boot_last_seq", float(last_seq), "1",
                            self._clock.wall_ms(), self._clock.monotonic(),
                            meta=(("boot_id", boot_id),))]

    def _drain_counters(self) -> list[Any]:
        """Interval counts and density alerts the counter processes sent since the last call."""
        return [m for counter in self.counters for m in counter.drain()]

    def _shutdown(self) -> int:
        systemd.notify("STOPPING=1")
        self.sampler.stop()
        for counter in self.counters:
            counter.stop()
        data = self._humidity.apply(self.sampler.drain()) + self._drain_counters()
        self.outbox.add(data)
        self.status.observe(data)
        self._commit()
        self.forwarder.stop(drain_timeout_s=3.0)
        self.forwarder.join(timeout=10.0)
        self.status.stop()
        self.outbox.close()
        log.info("agent stopped")
        return 0

