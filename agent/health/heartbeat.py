"""The heartbeat: the agent's own condition as ordinary measurements.

Health travels the same durable road as sensor data, so a box that was
offline for a day still reports what went wrong during that day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.health.system import SystemFacts
from agent.models import Measurement

AGENT_SENSOR_ID = "agent"
SENSOR_HEALTH = frozenset({
    "up", "stalled", "consecutive_failures", "errors_total", "frames_rejected_total",
    "bytes_discarded_total", "not_ready_total", "missed_slots_total", "samples_dropped_total",
    "resets_total", "reopens_total", "crashes_total", "measurement_restarts_total",
    "last_success_age"})
"""What the heartbeat says of each sensor (:func:`heartbeat`)."""
CAMERA_HEALTH = frozenset({"up", "source_up", "restarts_total", "hangs_total",
                           "records_rejected_total"})
"""What the heartbeat says of each camera (``CounterSupervisor.health``)."""


def is_health(sensor_id: str, quantity: str) -> bool:
    """Whether a measurement is the box's health rather than something it measures.

    By name: the box's own sensor, and the heartbeat's quantities of each sensor and
    camera, which no sensor model and no counter uses for a measured quantity (a test
    checks every profile and counter schema). Health goes to its own topic and only to
    the sinks that ask for it.
    """
    return sensor_id == AGENT_SENSOR_ID or quantity in SENSOR_HEALTH or quantity in CAMERA_HEALTH


@dataclass(frozen=True)
class SensorStatus:
    """What the heartbeat needs of one sensor (filled from the sampler's health)."""

    sensor_id: str
    up: bool
    stalled: bool
    """Its thread has not come round its loop for ``stall_after_s`` (hung in a read)."""
    consecutive_failures: int
    errors_total: int
    frames_rejected: int
    not_ready_total: int
    missed_slots: int
    samples_dropped: int
    resets: int
    reopens: int
    last_success_age_s: float | None
    crashes: int = 0
    measurement_restarts: int = 0
    bytes_discarded: int = 0


@dataclass(frozen=True)
class SinkStatus:
    """What the heartbeat needs of one sink (MQTT, Sensor.Community, ...)."""

    name: str
    backlog: int
    """Stored measurements this sink does not have yet."""
    last_success_age_s: float | None
    """Since its receiver last confirmed something; None: never in this run."""
    errors_total: int
    dropped_total: int
    """Measurements the outbox's bounds dropped before this sink had them."""
    rejected_total: int | None = None
    """Measurements its receiver refused for good (skipped for this sink); None: a sink
    that never skips (MQTT keeps what the broker refuses and sends it again)."""
    last_error: str = ""
    """For the status page only (the heartbeat carries numbers)."""
    refused: bool = False
    """Its receiver refuses this box now (credentials, registration): a person must act."""


@dataclass(frozen=True)
class AgentStatus:
    """What the heartbeat needs of the agent itself."""

    uptime_s: float
    outbox_depth: int
    outbox_dropped_total: int
    mqtt_connected: bool
    mqtt_connects: int
    messages_sent: int
    counter_restarts: int = 0
    forwarder_crashes: int = 0
    outbox_quarantined: int = 0
    outbox_poison: int = 0
    outbox_lost: int = 0
    """Committed measurements the database lost without an error (a damaged WAL)."""


def heartbeat(agent: AgentStatus, system: SystemFacts, sensors: Sequence[SensorStatus],
              utc_ms: int, monotonic_s: float, *, sinks: Sequence[SinkStatus] = ()
              ) -> list[Measurement]:
    """Build the heartbeat measurement set (absent host facts are simply left out)."""

    def m(sensor: str, quantity: str, value: float | None, unit: str) -> Measurement | None:
        if value is None:
            return None
        return Measurement(sensor, quantity, float(value), unit, utc_ms, monotonic_s)

    items = [
        m(AGENT_SENSOR_ID, "uptime", agent.uptime_s, "s"),
        m(AGENT_SENSOR_ID, "outbox_depth", agent.outbox_depth, "{measurement}"),
        m(AGENT_SENSOR_ID, "outbox_dropped_total", agent.outbox_dropped_total, "{measurement}"),
        m(AGENT_SENSOR_ID, "outbox_quarantined_total", agent.outbox_quarantined, "1"),
        m(AGENT_SENSOR_ID, "outbox_poison_total", agent.outbox_poison, "{measurement}"),
        m(AGENT_SENSOR_ID, "outbox_lost_total", agent.outbox_lost, "{measurement}"),
        m(AGENT_SENSOR_ID, "mqtt_connected", int(agent.mqtt_connected), "1"),
        m(AGENT_SENSOR_ID, "mqtt_connects_total", agent.mqtt_connects, "1"),
        m(AGENT_SENSOR_ID, "messages_sent_total", agent.messages_sent, "1"),
        m(AGENT_SENSOR_ID, "counter_restarts_total", agent.counter_restarts, "1"),
        m(AGENT_SENSOR_ID, "forwarder_crashes_total", agent.forwarder_crashes, "1"),
        m(AGENT_SENSOR_ID, "cpu_temperature", system.cpu_temperature_c, "Cel"),
        m(AGENT_SENSOR_ID, "throttled", system.throttled, "1"),
        m(AGENT_SENSOR_ID, "load_1m", system.load_1m, "1"),
        m(AGENT_SENSOR_ID, "disk_free", system.disk_free_mb, "MBy"),
        m(AGENT_SENSOR_ID, "rss", system.rss_mb, "MBy"),
        m(AGENT_SENSOR_ID, "clock_synced", None if system.clock_synchronized is None
          else int(system.clock_synchronized), "1"),
    ]
    for sink in sinks:  # the box's own quantities, named after the sink: mqtt_backlog, ...
        items += [
            m(AGENT_SENSOR_ID, f"{sink.name}_backlog", sink.backlog, "{measurement}"),
            m(AGENT_SENSOR_ID, f"{sink.name}_last_success_age", sink.last_success_age_s, "s"),
            m(AGENT_SENSOR_ID, f"{sink.name}_errors_total", sink.errors_total, "1"),
            m(AGENT_SENSOR_ID, f"{sink.name}_dropped_total", sink.dropped_total,
              "{measurement}"),
            m(AGENT_SENSOR_ID, f"{sink.name}_rejected_total", sink.rejected_total,
              "{measurement}"),
        ]
    for s in sensors:
        items += [
            m(s.sensor_id, "up", int(s.up), "1"),
            m(s.sensor_id, "stalled", int(s.stalled), "1"),
            m(s.sensor_id, "consecutive_failures", s.consecutive_failures, "1"),
            m(s.sensor_id, "errors_total", s.errors_total, "1"),
            m(s.sensor_id, "frames_rejected_total", s.frames_rejected, "1"),
            m(s.sensor_id, "bytes_discarded_total", s.bytes_discarded, "By"),
            m(s.sensor_id, "not_ready_total", s.not_ready_total, "1"),
            m(s.sensor_id, "missed_slots_total", s.missed_slots, "1"),
            m(s.sensor_id, "samples_dropped_total", s.samples_dropped, "1"),
            m(s.sensor_id, "resets_total", s.resets, "1"),
            m(s.sensor_id, "reopens_total", s.reopens, "1"),
            m(s.sensor_id, "crashes_total", s.crashes, "1"),
            m(s.sensor_id, "measurement_restarts_total", s.measurement_restarts, "1"),
            m(s.sensor_id, "last_success_age", s.last_success_age_s, "s"),
        ]
    return [item for item in items if item is not None]
