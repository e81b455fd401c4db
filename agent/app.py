"""The composition root: config in, a running agent out. Only this module sees everything."""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from agent import __version__
from agent.bus.provider import BusProvider
from agent.clock import SYSTEM, Clock
from agent.config import AgentConfig, load_config
from agent.config.camera_write import PROPOSAL_FILE
from agent.config.sinks import sensor_community_channels
from agent.errors import ConfigError, StorageError
from agent.health import systemd
from agent.health.heartbeat import (
    AGENT_SENSOR_ID,
    AgentStatus,
    SensorStatus,
    SinkStatus,
    heartbeat,
)
from agent.health.system import cpu_serial, read_system
from agent.health.throttle import HealthThrottle
from agent.models import Measurement
from agent.plan import Plan, community_node, humidity_rules, plan, sensor_opener
from agent.publish.birth import Box, CameraEntry, birth_payload, birth_topic
from agent.publish.community_sink import SINK as COMMUNITY_SINK
from agent.publish.community_sink import SensorCommunitySink
from agent.publish.discovery import STATE_FILE, Announcer
from agent.publish.forwarder import Forwarder
from agent.publish.homeassistant import Announcement, announcement_for
from agent.publish.http_sink import HttpSink
from agent.publish.influx_sink import SINK as INFLUX_SINK
from agent.publish.influx_sink import InfluxDBSink
from agent.publish.influxdb import Layout, sources
from agent.publish.sensorthings import catalog
from agent.publish.sensorthings_sink import SINK as STA_SINK
from agent.publish.sensorthings_sink import SensorThingsSink
from agent.redact import redact_text
from agent.reload import changes, refuse_fixed_settings
from agent.sampling import Sampler, SensorHealth
from agent.sampling.humidity import HumidityCorrector
from agent.status.camera_setup import CameraSetup
from agent.status.facts import BoxFacts, BrokerFacts, CameraFacts, SensorFacts
from agent.status.service import StatusService
from agent.storage import Outbox
from agent.storage.ledger import MQTT_SINK
from agent.storage.space import DiskSpace
from agent.vision.process import CounterSupervisor

log = logging.getLogger(__name__)

ACK_FLUSH_ROWS = 2000
"""Acknowledged rows that make the main loop commit before ``commit_interval_s``."""

LOOP_PERIOD_S = 0.2


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


class Agent:
    """Runs sampler, outbox and forwarder until stopped; then shuts down in order."""

    def __init__(self, the_plan: Plan, buses: BusProvider, *, boot_id: str | None = None,
                 clock: Clock | None = None, loader: Callable[[], Plan] | None = None) -> None:
        self.plan = the_plan
        self.config = the_plan.config
        self.boot_id = boot_id or uuid.uuid4().hex
        self._clock = clock or SYSTEM
        self._buses = buses
        self._loader = loader
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._started = self._clock.monotonic()
        storage = self.config.storage
        sinks = self.config.sinks
        self.outbox = Outbox(storage.path, self.boot_id, max_rows=storage.max_rows,
                             max_age_days=storage.max_age_days, wall_ms=self._clock.wall_ms,
                             space=DiskSpace(storage.path.parent,
                                             min_free_mb=storage.min_free_mb,
                                             reserve_mb=storage.reserve_mb),
                             sinks=(MQTT_SINK,)
                             + ((COMMUNITY_SINK,) if sinks.active_sensor_community() else ())
                             + ((INFLUX_SINK,) if sinks.active_influxdb() else ())
                             + ((STA_SINK,) if sinks.active_sensorthings() else ()))
        self.community = self._make_community(the_plan)
        self.influx = self._make_influx(the_plan)
        self.sensorthings = self._make_sensorthings(the_plan)
        self._identities: dict[str, dict[str, str]] = {}
        """What each sensor said of itself when opened (serial, firmware)."""
        self.announcer = Announcer(storage.path.parent / STATE_FILE,
                                   self._announcement(the_plan))
        self.sampler, self._humidity = self._make_sampler(the_plan)
        self._health = self._health_throttle()
        self.forwarder = self._make_forwarder(the_plan.config)
        self.camera_setup = CameraSetup(
            lambda: self.counters, Path(the_plan.source) if loader else None,
            lambda path: plan(load_config(path, owner_only_secrets=True), str(path)),
            self._reload.set, self._clock.monotonic,
            proposal=storage.path.parent / PROPOSAL_FILE)
        # One counter process per camera; OpenCV and ONNX Runtime load only in those.
        self.counters = [self._make_counter(camera_id, the_plan.config)
                         for camera_id, camera in self.config.cameras.items() if camera.enabled]
        self.status = self._make_status(the_plan)

    def _make_sampler(self, the_plan: Plan) -> tuple[Sampler, HumidityCorrector]:
        return (Sampler(the_plan.sensors, sensor_opener(the_plan, self._buses), self._clock),
                HumidityCorrector(humidity_rules(the_plan.sensors)))

    def _learn_identities(self) -> None:
        """Sensors identify themselves when opened: announce serials and firmware then."""
        current = {s.sensor_id for s in self.plan.sensors}  # kept across a reload's reopen
        found = {k: v for k, v in self._identities.items() if k in current} | {
            h.sensor_id: dict(h.identity) for h in self.sampler.health() if h.identity}
        if found != self._identities:
            self._identities = found
            self.announcer.update(self._announcement(self.plan))

    def _health_throttle(self) -> HealthThrottle:
        health = self.config.health
        return HealthThrottle(health.min_send_interval_s, health.refresh_s)

    def _make_forwarder(self, config: AgentConfig) -> Forwarder:
        return Forwarder(self.outbox, config.mqtt, config.device_id, config.client_id,
                         announcer=self.announcer, clock=self._clock)

    def _announcement(self, the_plan: Plan) -> Announcement:
        """The retained messages the box owes every connection: its birth message, and
        what Home Assistant is told about it (``[mqtt.home_assistant]``)."""
        config = the_plan.config
        serial = cpu_serial()
        ha = announcement_for(config.mqtt, config.device_id, the_plan.sensors, __version__,
                              serial, identities=self._identities)
        cameras = [CameraEntry(camera_id, camera.interval_s,
                               tuple(line.name for line in camera.lines),
                               tuple(zone.name for zone in camera.zones))
                   for camera_id, camera in config.cameras.items() if camera.enabled]
        box = Box(config.device_id, __version__, serial, config.sha256(), config.location)
        birth = birth_payload(box, the_plan.sensors, cameras, self._identities)
        return dataclasses.replace(ha, standing={
            birth_topic(config.mqtt.topic_prefix, config.device_id): birth})

    def _make_community(self, the_plan: Plan) -> SensorCommunitySink | None:
        """The Sensor.Community sink; its pins and value types follow the sensors' models."""
        config = the_plan.config.sinks.active_sensor_community()
        if config is None:
            return None
        return SensorCommunitySink(
            self.outbox, config, community_node(the_plan.config, the_plan.source) or "",
            sensor_community_channels(config, the_plan.sensors), f"lokaalmeten-{__version__}",
            clock=self._clock)

    def _make_influx(self, the_plan: Plan) -> InfluxDBSink | None:
        """The InfluxDB sink; which rows are data and of which model follows the sensors."""
        config = the_plan.config.sinks.active_influxdb()
        if config is None:
            return None
        cameras = [cid for cid, camera in the_plan.config.cameras.items() if camera.enabled]
        return InfluxDBSink(self.outbox, Layout(config, the_plan.config.device_id,
                                                sources(the_plan.sensors, cameras)),
                            f"lokaalmeten/{__version__}", clock=self._clock)

    def _make_sensorthings(self, the_plan: Plan) -> SensorThingsSink | None:
        """The SensorThings sink; its Datastreams follow the sensors and their models."""
        config = the_plan.config.sinks.active_sensorthings()
        if config is None:
            return None
        box = the_plan.config
        return SensorThingsSink(
            self.outbox, config,
            catalog(config, box.device_id, the_plan.sensors, box.location,
                    agent_version=__version__, box_serial=cpu_serial()),
            f"lokaalmeten/{__version__}", clock=self._clock)

    def _http_sinks(self) -> list[HttpSink[Any]]:
        return [sink for sink in (self.community, self.influx, self.sensorthings)
                if sink is not None]

    def _stop_http_sinks(self) -> None:
        """Each ends its request in flight within its timeout_s."""
        for sink in self._http_sinks():
            sink.stop()
        for sink in self._http_sinks():
            sink.join(sink.timeout_s + 5.0)

    def _restart_http_sinks(self, the_plan: Plan) -> None:
        """New sensors: new pins and value types, new models ([sinks] itself never reloads)."""
        self._stop_http_sinks()
        self.community = self._make_community(the_plan)
        self.influx = self._make_influx(the_plan)
        self.sensorthings = self._make_sensorthings(the_plan)
        for sink in self._http_sinks():
            sink.start()

    def _make_counter(self, camera_id: str, config: AgentConfig) -> CounterSupervisor:
        return CounterSupervisor(camera_id, config.cameras[camera_id],
                                 clock=self._clock, log_level=config.log_level,
                                 setup=self.camera_setup.session(camera_id))

    def _make_status(self, the_plan: Plan) -> StatusService:
        """The local status page, its history and the periodic log summary (agent/status)."""
        config = the_plan.config
        return StatusService(
            config.status, config.health, config.storage.path.parent, self._status_facts,
            {(s.sensor_id, q.name): q.aggregation.value
             for s in the_plan.sensors for q in s.profile.quantities},
            cameras=[c.camera_id for c in self.counters], wall_ms=self._clock.wall_ms,
            monotonic=self._clock.monotonic, setup=self.camera_setup)

    def request_stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        def handle(signum: int, frame: FrameType | None) -> None:
            log.info("received %s; shutting down", signal.Signals(signum).name)
            self.request_stop()

        def handle_hup(signum: int, frame: FrameType | None) -> None:
            log.info("received SIGHUP; reloading the configuration")
            self._reload.set()  # the main loop reloads: a handler must not stop threads

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        # Under systemd (stderr: the journal) SIGHUP asks for a reload; on a terminal it
        # says the terminal went away, and an agent run in the foreground goes with it.
        signal.signal(signal.SIGHUP, handle if sys.stderr.isatty() else handle_hup)

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
        for sink in self._http_sinks():
            sink.start()
        self.status.start()
        systemd.notify("READY=1\nSTATUS=sampling")
        watchdog_every = systemd.watchdog_interval_s()
        commit_every = self.config.storage.commit_interval_s  # [storage] never reloads
        now = self._clock.monotonic()
        last_commit = last_ping = now
        next_heartbeat = now + min(self.config.health.interval_s, 10.0)
        healthy = True
        while not self._clock.wait(self._stop, LOOP_PERIOD_S):
            if self.forwarder.gave_up:
                log.critical("the forwarder kept crashing; exiting so systemd restarts the agent")
                self._shutdown()
                return 1
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            now = self._clock.monotonic()
            self._collect()
            self.status.tick(now)
            if now >= next_heartbeat:
                self.outbox.add(self._health.select(self._heartbeat(), now))
                self._learn_identities()
                next_heartbeat = now + self.config.health.interval_s
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

    def reload(self) -> bool:
        """Take over the configuration file (``loader``) as it is now; False when refused.

        Components whose settings changed stop (sensors emit their partial windows,
        counters their partial intervals), all they produced is committed, and they
        start anew; the outbox stays open, so ``seq`` goes on (:mod:`agent.reload`).
        """
        if self._loader is None:
            log.warning("reload: this agent was started without a configuration file")
            return False
        try:
            new = self._loader()
            refuse_fixed_settings(self.config, new.config, new.source)
        except ConfigError as exc:
            log.error("reload refused; still running with the previous configuration:\n%s",
                      redact_text(str(exc)))
            return False
        change = changes(self.config, new.config)
        if not change:
            log.info("reload: the configuration is unchanged")
            return True
        log.info("reload: restarting %s", change.describe())
        systemd.notify("RELOADING=1")
        if change.sensors:
            self.sampler.stop()
        stopping = [c for c in self.counters if c.camera_id in change.cameras]
        for counter in stopping:
            counter.stop()
        self._collect()
        self._commit()  # all the old components produced is durable before anything new runs
        # The birth message follows every change; Home Assistant gets new entities, removals.
        self.announcer.update(self._announcement(new))
        if change.broker:  # the old one sends what is committed (3 s at most), says offline
            self.forwarder.stop(drain_timeout_s=3.0)
            self.forwarder.join(10.0)
            self.forwarder = self._make_forwarder(new.config)
            self.forwarder.start()
        if change.status:
            self.status.stop()
        if change.log_level:
            logging.getLogger().setLevel(new.config.log_level)
        self.plan, self.config = new, new.config
        self._health = self._health_throttle()  # the first reading after a reload: whole
        if change.sensors:
            self.sampler, self._humidity = self._make_sampler(new)
            self.sampler.start()
            self._restart_http_sinks(new)
        starting = [self._make_counter(camera_id, new.config)
                    for camera_id, camera in new.config.cameras.items()
                    if camera_id in change.cameras and camera.enabled]
        self.counters = [c for c in self.counters if c not in stopping] + starting
        for counter in starting:
            counter.start()
        if change.status:
            self.status = self._make_status(new)
            self.status.start()
        systemd.notify("READY=1\nSTATUS=sampling")
        return True

    def _collect(self) -> None:
        """Move what sensors and counters produced into the outbox (and the status page)."""
        data = self._humidity.apply(self.sampler.drain()) + self._drain_counters()
        self.outbox.add(data)
        self.status.observe(data)

    def _commit(self) -> bool:
        try:
            if self.outbox.commit():
                self.forwarder.notify()
                for sink in self._http_sinks():
                    sink.notify()
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
            outbox_poison=stats.poison_total, outbox_lost=stats.lost_total)
        sensors = [_sensor_status(h, now_ms, self._clock.monotonic(),
                                  self.config.health.stall_after_s)
                   for h in self.sampler.health()]
        cameras = [m for c in self.counters for m in c.health(now_ms, self._clock.monotonic())]
        return heartbeat(status, read_system(self.config.storage.path.parent), sensors,
                         now_ms, self._clock.monotonic(), sinks=self._sinks(now_ms)) + cameras

    def _sinks(self, now_ms: int) -> list[SinkStatus]:
        """Each sink's backlog, last confirmation and failures, for the heartbeat."""
        def age(utc_ms: int | None) -> float | None:
            return None if utc_ms is None else max(0.0, (now_ms - utc_ms) / 1000)

        f, mqtt = self.forwarder.stats(), self.outbox.sink_figures(MQTT_SINK)
        sinks = [SinkStatus(MQTT_SINK, mqtt.backlog, age(f.last_ack_utc_ms),
                            f.connect_failures + f.rejected + f.puback_timeouts + f.crashes,
                            mqtt.dropped_total, last_error=redact_text(f.last_error))]
        for sink in self._http_sinks():
            c, figures = sink.stats(), self.outbox.sink_figures(sink.name)
            sinks.append(SinkStatus(sink.name, figures.backlog, age(c.last_success_utc_ms),
                                    c.errors_total, figures.dropped_total, c.rejected,
                                    redact_text(c.last_error), c.refused))
        return sinks

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
        broker = BrokerFacts(self.config.mqtt.host, self.config.mqtt.port, forwarder.connected,
                             forwarder.connects, forwarder.messages_sent,
                             forwarder.measurements_acked, redact_text(forwarder.last_error))
        return BoxFacts(
            self.config.device_id, self.boot_id, __version__, now_ms, now - self._started,
            broker, stats.depth, stats.dropped_total,
            stats.quarantined_total, self.config.storage.min_free_mb,
            read_system(self.config.storage.path.parent), tuple(sensors), tuple(cameras),
            tuple(self._sinks(now_ms)))

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
        self._collect()
        self._commit()
        self.forwarder.stop(drain_timeout_s=3.0)
        self._stop_http_sinks()
        self.forwarder.join(10.0)
        self.status.stop()
        self.outbox.close()
        log.info("agent stopped")
        return 0

