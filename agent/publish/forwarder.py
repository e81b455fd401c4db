"""The forwarder drains the outbox to the broker and acknowledges rows on PUBACK.

It is the outbox's ``mqtt`` sink: other sinks (agent/publish/community_sink.py) read the
same outbox at their own pace, and a row leaves only when every sink has it.

It owns the reconnect loop: capped exponential backoff with full jitter
(sleep a random time in [0, min(cap, base·2^attempt)]: the daemon's one
:class:`agent.supervision.Backoff`), plus a random delay before the very first
connect. paho's built-in reconnect has no jitter, and a fleet of boxes that lost
the same broker would otherwise return in lockstep. Every wait and time stamp goes
through the injected clock.

The forwarder never dies quietly: its loop runs on a
:class:`agent.supervision.SupervisedThread`, as every worker of the daemon does.
A crash drops the connection *without* DISCONNECT (so the broker publishes the
Last Will and the retained status stops saying ``online``), is counted in
``crashes`` and the loop restarts after a backoff; after ``give_up_after``
quick crashes in a row :attr:`Forwarder.gave_up` is true and the thread ends,
for the daemon to exit non-zero.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from agent.clock import SYSTEM, Clock
from agent.config.mqtt import MqttConfig
from agent.errors import PublishError, StorageError
from agent.models import OutboxRecord
from agent.publish.discovery import Announcer
from agent.publish.mqtt import Ack, MqttSession
from agent.publish.payload import (
    Message,
    build_messages,
    health_topic,
    measurements_topic,
    status_topic,
)
from agent.publish.refusals import Refusals, Verdict
from agent.storage import Outbox
from agent.storage.ledger import MQTT_SINK
from agent.supervision import Backoff, RestartPolicy, Retries, SupervisedThread

log = logging.getLogger(__name__)

SessionFactory = Callable[[Callable[[], None]], MqttSession]

PACKET_OVERHEAD = 32
"""PUBLISH bytes besides topic and payload: fixed header, lengths, packet id, properties."""
TAKEOVER_DROPS = 3
TAKEOVER_WINDOW_S = 60.0
"""Broker-side drops in this window that suggest a twin with our client id."""

RESTARTS = RestartPolicy(first_delay_s=1.0, max_delay_s=30.0, give_up_after=5,
                         healthy_after_s=300.0)
"""Five crashes within about half a minute, none after a healthy run: give up."""


@dataclass(frozen=True)
class ForwarderStats:
    """Numbers for the heartbeat."""

    connected: bool
    connects: int
    connect_failures: int
    messages_sent: int
    measurements_acked: int
    rejected: int
    last_error: str
    crashes: int = 0
    takeovers: int = 0
    """Connections the broker gave to another client with our client id."""
    puback_timeouts: int = 0
    last_ack_utc_ms: int | None = None
    """When the broker last acknowledged a message (wall clock)."""


class Forwarder:
    """Publishes committed outbox rows in order; at most ``max_inflight`` unacknowledged."""

    def __init__(self, outbox: Outbox, config: MqttConfig, device_id: str, client_id: str,
                 *, rng: random.Random | None = None,
                 session_factory: SessionFactory | None = None,
                 restarts: RestartPolicy = RESTARTS,
                 announcer: Announcer | None = None, clock: Clock = SYSTEM) -> None:
        self._clock = clock
        self._thread = SupervisedThread("forwarder", self._serve, restarts, self._crashed,
                                        clock=clock)
        self._stop_event = self._thread.stopping
        self._first_run = True
        self._outbox = outbox
        self._config = config
        self._device_id = device_id
        self._client_id = client_id
        self._announcer = announcer
        """Home Assistant discovery and per-quantity states (agent/publish/discovery.py)."""
        self._topic = measurements_topic(config.topic_prefix, device_id)
        self._health_topic = health_topic(config.topic_prefix, device_id) \
            if config.health_topic else self._topic
        self._rng = rng or random.Random()
        self._wake = threading.Event()
        self._drain_deadline = 0.0
        self._session: MqttSession | None = None
        self._make_session = session_factory or (lambda on_event: MqttSession(
            config, client_id, status_topic(config.topic_prefix, device_id), on_event))
        self._stats = ForwarderStats(False, 0, 0, 0, 0, 0, "")
        self._drops: deque[float] = deque()
        self._refusals = Refusals(config.poison_after_rejections)
        self._lock = threading.Lock()

    # -- control (other threads) ----------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait up to ``timeout_s`` for the forwarder to end; True when it has."""
        return self._thread.join(timeout_s)

    @property
    def gave_up(self) -> bool:
        """The loop kept crashing and was given up on: the daemon must exit non-zero."""
        return self._thread.gave_up

    def notify(self) -> None:
        """New rows were committed: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, drain_timeout_s: float = 3.0) -> None:
        """Send what is committed and await PUBACKs for up to ``drain_timeout_s``; say offline."""
        self._drain_deadline = self._clock.monotonic() + drain_timeout_s
        self._stop_event.set()
        self._wake.set()

    def stats(self) -> ForwarderStats:
        with self._lock:
            return self._stats

    # -- thread -------------------------------------------------------------------------

    def _serve(self) -> None:
        """Connect, pump, reconnect with backoff, until stopped.

        The very first connect waits a random time as well (a fleet powering up
        together); a restart after a crash has already waited its backoff.
        """
        first, self._first_run = self._first_run, False
        if first and self._pause(self._rng.uniform(0.0, self._config.first_connect_jitter_s)):
            return
        retries = Retries(Backoff(self._config.reconnect_min_s, self._config.reconnect_max_s,
                                  jitter=True), self._rng)
        while not self._stop_event.is_set():
            try:
                self._session = session = self._make_session(self._wake.set)
                session.connect()
            except PublishError as exc:
                self._session = None
                self._bump(connect_failures=1, last_error=str(exc))
                delay = retries.failed()
                log.warning("broker unreachable (%s); retry in %.1f s", exc, delay)
                if self._pause(delay):
                    return
                continue
            acked_before = self.stats().measurements_acked
            self._bump(connects=1, connected=True)
            self._pump(session)  # a crash in here is handled by _crashed
            self._bump(connected=False)
            if self._stop_event.is_set():
                session.announce_offline(timeout_s=2.0)
            session.close()
            self._session = None
            self._check_takeover(session)
            if self._stop_event.is_set():
                return
            # A connection that delivered nothing (refused publishes, instant drops) counts
            # as a failure, so a broker that rejects every message is not hammered. After
            # one that did, wait a random time too: a broker restart drops a whole fleet at
            # once, and it must not come back in lockstep.
            if self.stats().measurements_acked > acked_before:
                retries.succeeded()
                delay = self._rng.uniform(0.0, self._config.first_connect_jitter_s)
            else:
                delay = retries.failed()
            log.info("reconnecting in %.1f s", delay)
            if self._pause(delay):
                return

    def _check_takeover(self, session: MqttSession) -> None:
        """Tell an operator when another client seems to hold our client id.

        MQTT 5 brokers may say so (reason 0x8E); Mosquitto 2.0 just closes the old
        connection. So a broker that keeps dropping connections it accepts again at
        once (TAKEOVER_DROPS within TAKEOVER_WINDOW_S) is reported the same way.
        """
        if not session.dropped:
            return
        now = self._clock.monotonic()
        self._drops.append(now)
        while self._drops and now - self._drops[0] > TAKEOVER_WINDOW_S:
            self._drops.popleft()
        if session.taken_over or len(self._drops) >= TAKEOVER_DROPS:
            self._drops.clear()
            self._bump(takeovers=1, last_error="session taken over by another client with "
                       f"client id {self._client_id!r}?")
            log.error("the broker keeps handing client id %r to another connection: do two "
                      "boxes share a device_id (or client_id)?", self._client_id)

    def _pump(self, session: MqttSession) -> None:
        """Send and acknowledge until the connection drops, or until stopped and drained.

        After a refusal nothing more is sent on this connection; it closes once the
        messages in flight are answered, because their answers tell a message the broker
        refuses from a broker that refuses everything (:mod:`agent.publish.refusals`).
        """
        inflight: dict[int, Message] = {}
        cursor = 0  # a new connection restarts at the head: unacked rows are resent
        progress = self._clock.monotonic()
        refused = idle = False
        if self._announcer is not None:
            self._announcer.new_connection()
        while session.connected:
            got, refusal = self._collect_acks(session, inflight)
            refused = refused or refusal
            if got or not inflight:
                progress = self._clock.monotonic()
            elif self._clock.monotonic() - progress > self._config.puback_timeout_s:
                self._bump(puback_timeouts=1, last_error="no PUBACK for "
                           f"{self._config.puback_timeout_s:g} s")
                log.error("the broker acknowledged nothing for %.0f s; reconnecting",
                          self._config.puback_timeout_s)
                session.abort()
                return
            if refused and not inflight:
                session.close()  # reconnect after a backoff, restarting from the head
                return
            if not refused:
                self._announce(session)
                cursor, idle = self._send(session, inflight, cursor)
            if self._stop_event.is_set() and (
                    (idle and not inflight) or self._clock.monotonic() >= self._drain_deadline):
                return
            self._clock.wait(self._wake, 0.25)
            self._wake.clear()

    def _send(self, session: MqttSession, inflight: dict[int, Message],
              cursor: int) -> tuple[int, bool]:
        """Publish claimed rows up to the in-flight limit; returns (cursor, outbox idle)."""
        while len(inflight) < self._config.max_inflight:
            try:
                records = self._outbox.claim(cursor, self._config.max_batch, MQTT_SINK)
            except StorageError as exc:
                log.error("%s", exc)
                return cursor, False
            if not records:
                return cursor, True
            now_ms = self._clock.wall_ms()
            limit = self._max_payload(session)
            split = min(limit, self._refusals.split_below or limit)
            for message in build_messages(self._device_id, records, self._config.max_batch,
                                          now_ms, split, apart=self._config.health_topic):
                if len(message.payload) > limit:  # one measurement alone is too large
                    self._outbox.set_aside(message.row_ids, f"{len(message.payload)} bytes, "
                                           f"over the {limit}-byte message limit", MQTT_SINK)
                    cursor = message.row_ids[-1]
                    continue
                try:
                    self._publish_states(session, records, message)
                    mid = session.publish(self._health_topic if message.health else self._topic,
                                          message.payload)
                except PublishError as exc:
                    self._bump(last_error=str(exc))
                    return cursor, False
                inflight[mid] = message
                cursor = message.row_ids[-1]
                self._bump(messages_sent=1)
        return cursor, False

    def _announce(self, session: MqttSession) -> None:
        """Home Assistant discovery configs and removals this connection still owes.

        Rare (each connection, each reload), so each waits for its PUBACK here: a removal
        is forgotten only once the broker has it.
        """
        if self._announcer is None:
            return
        for topic, payload in self._announcer.pending():
            if session.publish_confirmed(topic, payload, retain=True, timeout_s=10.0):
                self._announcer.confirmed(topic, payload)

    def _publish_states(self, session: MqttSession, records: list[OutboxRecord],
                        message: Message) -> None:
        """Each announced quantity's newest window in ``message``, retained, sent *before*
        it: a broker acknowledges QoS 1 messages in the order it received them (MQTT
        3.1.1 and 5, section 4.6), so when the batch's PUBACK acknowledges its rows, the
        states are acknowledged too, and a resent batch resends them in order."""
        if self._announcer is None:
            return
        rows = set(message.row_ids)
        for topic, payload in self._announcer.states(r for r in records if r.row_id in rows):
            session.publish(topic, payload, retain=True)

    def _max_payload(self, session: MqttSession) -> int:
        """Payload bytes that fit both our limit and the broker's packet limit."""
        limit = self._config.max_message_bytes
        if session.max_packet_bytes is not None:  # fixed header, topic, packet id, props
            topic = max(len(self._topic), len(self._health_topic))
            limit = min(limit, session.max_packet_bytes - topic - PACKET_OVERHEAD)
        return limit

    def _collect_acks(self, session: MqttSession,
                      inflight: dict[int, Message]) -> tuple[bool, bool]:
        """Apply the PUBACKs that arrived; (any arrived, any refused a measurement message)."""
        got = refused = False
        while not session.acks.empty():
            got = True
            ack = session.acks.get_nowait()
            message = inflight.pop(ack.mid, None)
            if message is None:  # the retained status
                continue
            if ack.accepted:
                self._outbox.ack(message.row_ids, MQTT_SINK)
                self._refusals.accepted(message.row_ids[0])
                self._bump(measurements_acked=len(message.row_ids),
                           last_ack_utc_ms=self._clock.wall_ms())
            else:
                refused = True
                self._refused(message, ack)
        return got, refused

    def _refused(self, message: Message, ack: Ack) -> None:
        """An MQTT 5 PUBACK with a failure reason: split, keep for a retry, or set aside."""
        rows = message.row_ids
        self._bump(rejected=1, last_error=f"broker refused a message: {ack.reason}")
        verdict = self._refusals.refused(rows[0], len(rows), len(message.payload), ack.code)
        if verdict is Verdict.SPLIT:
            log.warning("broker refused a %d-byte message as too large; sending it in "
                        "messages under %d bytes", len(message.payload),
                        self._refusals.split_below)
        elif verdict is Verdict.POISON:
            self._outbox.set_aside(rows, f"refused {self._config.poison_after_rejections} "
                                   f"times by the broker ({ack.reason}, 0x{ack.code:02X}) "
                                   "while it accepted others", MQTT_SINK)
        else:
            log.error("broker refused a message of %d measurements (%s, 0x%02X; counted "
                      "%d of %d); kept, resent after a reconnect", len(rows), ack.reason,
                      ack.code, self._refusals.refusals(rows[0]),
                      self._config.poison_after_rejections)

    def _crashed(self, exc: Exception) -> None:
        """Drop the connection uncleanly (the Last Will fires) and count the crash."""
        session, self._session = self._session, None
        if session is not None:
            session.abort()
        self._bump(connected=False, crashes=1, last_error=f"crashed: {exc!r}"[:200])

    def _pause(self, seconds: float) -> bool:
        """Sleep unless stopped; True when stopped."""
        return self._clock.wait(self._stop_event, seconds)

    def _bump(self, connected: bool | None = None, last_error: str | None = None,
              last_ack_utc_ms: int | None = None, **increments: int) -> None:
        with self._lock:
            s = self._stats
            values = {name: getattr(s, name) + n for name, n in increments.items()}
            self._stats = ForwarderStats(
                connected=s.connected if connected is None else connected,
                last_error=s.last_error if last_error is None else last_error,
                last_ack_utc_ms=last_ack_utc_ms or s.last_ack_utc_ms,
                **{name: values.get(name, getattr(s, name))
                   for name in ("connects", "connect_failures", "messages_sent",
                                "measurements_acked", "rejected", "crashes", "takeovers",
                                "puback_timeouts")})
