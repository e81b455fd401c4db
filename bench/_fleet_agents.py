"""One worker process of the fleet benchmark: many simulated boxes on the real code path.

Each box is what the daemon wires up in ``agent/app.py``, minus the sensors: a
real :class:`Outbox` (its own SQLite file) fed with synthetic window means,
committed once per ``commit_interval_s`` like the main loop does, and drained
by a real :class:`Forwarder` with its real reconnect and jitter policy. The
only addition is :class:`TimedSession`, an :class:`MqttSession` that notes
when each connect attempt failed or succeeded and when a connection dropped,
so the parent can measure how a fleet comes back after a broker restart.

The parent talks to a worker over a pipe (``status``, ``stop-feeding``,
``finish``); a worker never decides anything about the run itself.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from agent.config.mqtt import MqttConfig
from agent.config.storage import StorageConfig
from agent.errors import PublishError
from agent.models import Measurement, Stats
from agent.publish.forwarder import Forwarder
from agent.publish.mqtt import MqttSession
from agent.publish.payload import status_topic
from agent.storage import Outbox

TOPIC_PREFIX = "fleet"
Event = tuple[str, float]
"""("fail" | "up" | "drop", time.monotonic()): CLOCK_MONOTONIC is one clock machine-wide,
so the parent can line these up with its own restart times."""


@dataclass(frozen=True)
class AgentSpec:
    device_id: str
    host: str
    port: int


@dataclass(frozen=True)
class WorkerSpec:
    index: int
    agents: tuple[AgentSpec, ...]
    protocol: str
    workdir: str
    rate_per_s: float
    mqtt: dict[str, float] = field(default_factory=dict)
    """MqttConfig overrides (reconnect and jitter settings); empty: the agent's defaults."""


@dataclass(frozen=True)
class AgentStatus:
    device_id: str
    connected: bool
    connects: int
    depth: int
    added: int
    acked: int
    """Measurements the broker has acknowledged to this box."""


@dataclass(frozen=True)
class AgentResult:
    device_id: str
    boot_id: str
    added: int
    """Measurements numbered by this box: seq 1..added must all arrive."""
    events: list[Event]
    forwarder: dict[str, object]
    dropped_total: int
    poison_total: int
    depth: int
    started: float
    """When its forwarder thread started (the first-connect jitter counts from here)."""


class TimedSession(MqttSession):
    """The agent's MQTT session, noting the time of every connect, failure and drop."""

    def __init__(self, events: list[Event], *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self._events = events

    def connect(self, timeout_s: float = 10.0) -> None:
        try:
            super().connect(timeout_s)
        except PublishError:
            self._events.append(("fail", time.monotonic()))
            raise
        self._events.append(("up", time.monotonic()))

    def close(self) -> None:
        if self.dropped:
            self._events.append(("drop", time.monotonic()))
        super().close()


class SimAgent:
    """One box: outbox + forwarder, fed ``rate_per_s`` measurements a second."""

    def __init__(self, spec: AgentSpec, workdir: Path, protocol: str, rate_per_s: float,
                 mqtt: dict[str, float]) -> None:
        storage = StorageConfig()
        self.spec = spec
        self.rate_per_s = rate_per_s
        self.events: list[Event] = []
        self.added = 0
        self.started = 0.0
        self._due = 0.0
        # No DiskSpace: every real box has its own SD card; 500 reserve files of 16 MB
        # on one shared disk would measure this machine, not the fleet.
        self.outbox = Outbox(workdir / f"{spec.device_id}.sqlite", uuid.uuid4().hex,
                             max_rows=storage.max_rows, max_age_days=storage.max_age_days)
        config = MqttConfig.model_validate({"host": spec.host, "port": spec.port,
                                            "protocol": protocol,
                                            "topic_prefix": TOPIC_PREFIX, **mqtt})
        client_id = f"lokaalmeten-{spec.device_id}"
        status = status_topic(config.topic_prefix, spec.device_id)
        self.forwarder = Forwarder(
            self.outbox, config, spec.device_id, client_id,
            session_factory=lambda on_event: TimedSession(self.events, config, client_id,
                                                          status, on_event))

    def tick(self, feeding: bool) -> None:
        """One pass of the daemon's main loop: add what was measured, commit, notify."""
        if feeding:
            self._due += self.rate_per_s
            count, self._due = int(self._due), self._due - int(self._due)
            if count:
                now_ms = time.time_ns() // 1_000_000
                self.outbox.add(
                    Measurement("pm", "pm2_5", 8.0 + (self.added + i) % 50 * 0.1, "ug/m3",
                                now_ms, time.monotonic(), stats=Stats(6.0, 12.0, 10, 10.0))
                    for i in range(count))
                self.added += count
        if self.outbox.commit():
            self.forwarder.notify()

    def status(self) -> AgentStatus:
        stats = self.forwarder.stats()
        return AgentStatus(self.spec.device_id, stats.connected, stats.connects,
                           self.outbox.stats().depth, self.added, stats.measurements_acked)

    def result(self) -> AgentResult:
        outbox = self.outbox.stats()
        return AgentResult(self.spec.device_id, self.outbox.boot_id, self.added,
                           list(self.events), asdict(self.forwarder.stats()),
                           outbox.dropped_total, outbox.poison_total, outbox.depth,
                           self.started)


class Fleet:
    """The boxes of one process and the loop that feeds them, each at its own phase."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.agents = [SimAgent(a, Path(spec.workdir), spec.protocol, spec.rate_per_s, spec.mqtt)
                       for a in spec.agents]
        self.feeding = True
        self._stop = threading.Event()
        self._period_s = StorageConfig().commit_interval_s
        self._feeder = threading.Thread(target=self._feed, name="feeder", daemon=True)

    def start(self) -> None:
        for agent in self.agents:
            agent.started = time.monotonic()
            agent.forwarder.start()
        self._feeder.start()

    def _feed(self) -> None:
        """Visit every box once per period, spread evenly: boxes do not commit in unison."""
        started = time.monotonic()
        step = self._period_s / max(1, len(self.agents))
        slot = 0
        while not self._stop.is_set():
            for agent in self.agents:
                delay = started + slot * step - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                agent.tick(self.feeding)
                slot += 1

    def finish(self) -> list[AgentResult]:
        """Stop every forwarder (each says ``offline``), commit, and report."""
        self.feeding = False
        self._stop.set()
        self._feeder.join(10)
        for agent in self.agents:
            agent.forwarder.stop(drain_timeout_s=3.0)
        for agent in self.agents:
            agent.forwarder.join(15)
            agent.outbox.commit()
        results = [agent.result() for agent in self.agents]
        for agent in self.agents:
            agent.outbox.close()
        return results


def run_worker(conn: Connection, spec: WorkerSpec) -> None:
    """Entry point of a worker process; Ctrl-C is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    Path(spec.workdir).mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=str(Path(spec.workdir) / f"worker-{spec.index}.log"),
                        level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    fleet = Fleet(spec)
    fleet.start()
    handlers: dict[str, Callable[[], object]] = {
        "status": lambda: [agent.status() for agent in fleet.agents],
        "stop-feeding": lambda: setattr(fleet, "feeding", False),
        "finish": fleet.finish,
    }
    while True:
        command = conn.recv()
        conn.send(handlers[command]())
        if command == "finish":
            return
