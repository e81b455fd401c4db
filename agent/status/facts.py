"""What the composition root tells the status page about the running agent.

Plain frozen values, filled by ``agent/app.py`` from the sampler, forwarder, outbox
and counter supervisors when someone asks (the page, ``lokaalmeten status``) and
every few seconds for the trackers; nothing here reaches into those components.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from agent.health.heartbeat import SinkStatus
from agent.health.system import SystemFacts


@dataclass(frozen=True)
class SensorFacts:
    sensor_id: str
    model: str
    name: str
    """The profile's name of the device, e.g. "Nova Fitness SDS011"."""
    state: str
    """The worker's state: starting, warming_up, ok, failing, stopped."""
    up: bool
    stalled: bool
    consecutive_failures: int
    errors_total: int
    frames_rejected: int
    not_ready_total: int
    last_success_utc_ms: int | None
    last_error: str


@dataclass(frozen=True)
class CameraFacts:
    """Only what the heartbeat publishes of a counter: never anything else from it."""

    camera_id: str
    up: bool
    source_up: bool
    restarts_total: int
    records_rejected_total: int


@dataclass(frozen=True)
class BrokerFacts:
    """What the MQTT forwarder says of its broker."""

    host: str
    port: int
    connected: bool
    connects: int
    messages_sent: int
    measurements_acked: int
    last_error: str


@dataclass(frozen=True)
class BoxFacts:
    """Built every few seconds for the trackers. Fewer than 20 fields: CPython 3.11 (Debian
    12's and Raspberry Pi OS's) keeps every freed tuple of 20 items in a free list it never
    takes from (python/cpython#121439), and a call with 20 arguments makes one, so a box
    grew by 2000 such tuples (400 kB) over its first hours."""

    device_id: str
    boot_id: str
    version: str
    now_ms: int
    uptime_s: float
    broker: BrokerFacts
    outbox_depth: int
    outbox_dropped_total: int
    outbox_quarantined_total: int
    min_free_mb: float
    system: SystemFacts
    sensors: tuple[SensorFacts, ...]
    cameras: tuple[CameraFacts, ...]
    sinks: tuple[SinkStatus, ...] = ()
    """Every receiver the outbox feeds (mqtt first), as the heartbeat reports them."""


class Tracker:
    """Facts that need a past: how long the broker has been away, what was dropped lately.

    Fed by the main loop every few seconds, whether anyone looks or not, so the first
    request after an hour knows the broker left 50 minutes ago. The hour of drops keeps
    only the notes where the total changed: one for every note, every five seconds, is 720
    small objects each freed an hour after it was made, long-lived blocks scattered over
    Python's memory pools among short-lived ones for the daemon's whole life.
    """

    WINDOW_S = 3600.0

    def __init__(self, monotonic_s: float) -> None:
        self._last_connected = monotonic_s
        self._connected = False
        self._drops: deque[tuple[float, int]] = deque()

    def note(self, connected: bool, dropped_total: int, monotonic_s: float) -> None:
        self._connected = connected
        if connected:
            self._last_connected = monotonic_s
        if not self._drops or self._drops[-1][1] != dropped_total:
            self._drops.append((monotonic_s, dropped_total))
        while len(self._drops) > 1 and self._drops[1][0] <= monotonic_s - self.WINDOW_S:
            self._drops.popleft()

    def broker_down_s(self, monotonic_s: float) -> float | None:
        """Seconds since the broker was last seen connected (since start if never); None
        while connected."""
        return None if self._connected else max(0.0, monotonic_s - self._last_connected)

    def dropped_last_hour(self, dropped_total: int) -> int:
        """Measurements the outbox dropped within the last hour of this run."""
        return max(0, dropped_total - self._drops[0][1]) if self._drops else 0
