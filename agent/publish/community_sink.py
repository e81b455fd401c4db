"""The Sensor.Community sink: a thread that pushes the outbox's windows over HTTP.

It is one of the outbox's sinks, beside the MQTT forwarder: it reads the outbox
at its own position, so Sensor.Community being down for a day holds back nothing
else, and a row leaves the outbox only when every sink has it. What a push means
and how rows become pushes is in ``sensor_community.py``; this module does the
I/O and keeps to the server's meaning of each answer:

* 201 (any 2xx): the push's rows are acknowledged for this sink.
* 400: this push can never succeed (unknown value type, pin not registered for
  the node): its rows are skipped for this sink, counted as rejected, and the
  server's reason is logged once per reason; the pushes behind it go on.
* 403 (node unknown or no X-Sensor), 404, 401, 405: nothing this box can retry
  its way out of. Logged once, clearly; the rows are kept and the sink waits
  ``refused_retry_s`` (jittered) before trying again, so registering the node
  on devices.sensor.community is all it takes.
* 5xx, 408, 429, a timeout or no connection: retried after a capped exponential
  backoff with full jitter (no fleet returns in lockstep); the rows are kept.

An acknowledgement becomes durable at the outbox's next commit: a kill -9 after
the server stored a push and before that commit sends it again (at-least-once,
as over MQTT); never is a row acknowledged before the server confirmed it.

HTTP is urllib from the standard library: one small POST a minute per sensor
needs no connection pool, and the box loads nothing more for it.
"""

from __future__ import annotations

import dataclasses
import http.client
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from agent.config.sinks import Channels, SensorCommunityConfig
from agent.errors import StorageError
from agent.publish import sensor_community as sc
from agent.publish.forwarder import backoff_delay
from agent.storage import Outbox
from agent.supervision import RestartPolicy, supervise

log = logging.getLogger(__name__)

SINK = "sensor_community"
BATCH_ROWS = 500
IDLE_POLL_S = 5.0
RESPONSE_BYTES = 2048
"""Enough of an error body to log the server's reason."""
REASONS_REMEMBERED = 64
RESTARTS = RestartPolicy(first_delay_s=1.0, max_delay_s=300.0, give_up_after=None)
"""A crashing push loop is restarted for ever: MQTT delivery must not stop for it."""


@dataclass(frozen=True)
class SinkStats:
    """Numbers for the heartbeat and the status page."""

    pushes: int = 0
    delivered: int = 0
    """Measurements in pushes the server stored."""
    skipped: int = 0
    """Measurements this sink does not take (no Sensor.Community name, warming up)."""
    rejected: int = 0
    """Measurements in pushes the server refused for good (400)."""
    errors_total: int = 0
    """Failed attempts of any kind (network, 5xx, 403, 400)."""
    last_success_utc_ms: int | None = None
    last_error: str = ""
    refused: bool = False
    """The server refuses the node now (403/404): a person must act."""
    crashes: int = 0


class SensorCommunitySink(threading.Thread):
    """Pushes committed windows in outbox order, one POST per window and sensor."""

    def __init__(self, outbox: Outbox, config: SensorCommunityConfig, node_id: str,
                 channels: Channels, software_version: str, *,
                 rng: random.Random | None = None) -> None:
        super().__init__(name=SINK, daemon=True)
        self._outbox = outbox
        self._config = config
        self._node_id = node_id
        self._channels = channels
        self._software_version = software_version
        self._rng = rng or random.Random()
        self._wake = threading.Event()
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._stats = SinkStats()
        self._reasons: set[str] = set()

    # -- control (other threads) ------------------------------------------------------

    def notify(self) -> None:
        """New rows were committed: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the request in flight (at most ``timeout_s``), then end."""
        self._stop_event.set()
        self._wake.set()

    def stats(self) -> SinkStats:
        with self._lock:
            return self._stats

    @property
    def timeout_s(self) -> float:
        """The longest a request in flight can keep :meth:`stop` waiting."""
        return self._config.timeout_s

    # -- thread -------------------------------------------------------------------------

    def run(self) -> None:
        supervise(self.name, self._serve, self._stop_event, RESTARTS, self._crashed)

    def _serve(self) -> None:
        cursor, attempt = 0, 0
        while not self._stop_event.is_set():
            try:
                records = self._outbox.claim(cursor, BATCH_ROWS, SINK)
            except StorageError as exc:
                log.error("%s", exc)
                self._pause(IDLE_POLL_S)
                continue
            if not records:
                self._wake.wait(IDLE_POLL_S)
                self._wake.clear()
                continue
            full = len(records) == BATCH_ROWS
            work = sc.plan(records, self._channels, full=full)
            if work.skip:
                self._outbox.ack(work.skip, SINK)
                self._bump(skipped=len(work.skip))
            for index, push in enumerate(work.pushes):
                outcome = self._send(push)
                if outcome is sc.Verdict.RETRY:
                    attempt += 1
                    self._pause(backoff_delay(attempt, self._config.retry_min_s,
                                              self._config.retry_max_s, self._rng))
                    break
                if outcome is sc.Verdict.REFUSED:
                    self._pause(self._rng.uniform(0.5, 1.0) * self._config.refused_retry_s)
                    break
                attempt = 0
                if full or index < len(work.pushes) - 1:
                    self._pause(self._config.pause_between_pushes_s)
                if self._stop_event.is_set():
                    return
            else:
                cursor = work.last_row_id
                continue
            cursor = 0  # start again at the oldest row this sink does not have

    def _send(self, push: sc.Push) -> sc.Verdict:
        """POST one push and act on the answer; returns what it meant."""
        status, reason = self._post(push)
        outcome = sc.Verdict.RETRY if status is None else sc.verdict(status)
        if outcome is sc.Verdict.DELIVERED:
            self._outbox.ack(push.row_ids, SINK)
            if self.stats().refused:
                log.info("Sensor.Community accepts node %s again", self._node_id)
            self._bump(pushes=1, delivered=len(push.row_ids), refused=False,
                       last_success_utc_ms=time.time_ns() // 1_000_000)
            return outcome
        error = f"HTTP {status}: {reason}" if status is not None else reason
        self._bump(errors_total=1, last_error=f"{push.label}: {error}"[:300])
        if outcome is sc.Verdict.REJECTED:
            self._outbox.ack(push.row_ids, SINK)
            self._bump(rejected=len(push.row_ids))
            self._log_once(f"{status} {push.pin} {reason}", "Sensor.Community rejected the push "
                           "for %s (HTTP %s: %s); its %d measurements are skipped for "
                           "Sensor.Community. Is this sensor registered with pin %d?",
                           push.label, status, reason, len(push.row_ids), push.pin)
        elif outcome is sc.Verdict.REFUSED:
            if not self.stats().refused:
                log.error("Sensor.Community refuses node %s (HTTP %s: %s): register it on "
                          "https://devices.sensor.community (or set sinks.sensor_community."
                          "node_id); measurements are kept and retried every ~%g s",
                          self._node_id, status, reason, self._config.refused_retry_s)
            self._bump(refused=True)
        else:
            log.warning("Sensor.Community push for %s failed (%s); retrying", push.label,
                        error)
        return outcome

    def _post(self, push: sc.Push) -> tuple[int | None, str]:
        """(HTTP status, reason); status None when no answer came."""
        request = urllib.request.Request(
            str(self._config.url), data=sc.body(push, self._software_version), method="POST",
            headers=sc.headers(self._node_id, push, self._software_version))
        try:
            with urllib.request.urlopen(request, timeout=self._config.timeout_s) as response:
                return response.status, ""
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, _text(exc.read(RESPONSE_BYTES))
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            return None, str(getattr(exc, "reason", exc))

    def _log_once(self, key: str, message: str, *args: object) -> None:
        """ERROR the first time a reason is seen, DEBUG after (a systematic 400 every
        window would otherwise fill the journal)."""
        if key in self._reasons:
            log.debug(message, *args)
            return
        if len(self._reasons) >= REASONS_REMEMBERED:
            self._reasons.clear()
        self._reasons.add(key)
        log.error(message, *args)

    def _crashed(self, exc: Exception) -> None:
        self._bump(crashes=1, errors_total=1, last_error=f"crashed: {exc!r}"[:300])

    def _pause(self, seconds: float) -> None:
        self._stop_event.wait(seconds)

    def _bump(self, *, last_error: str | None = None, refused: bool | None = None,
              last_success_utc_ms: int | None = None, **increments: int) -> None:
        with self._lock:
            s = self._stats
            changes: dict[str, object] = {k: getattr(s, k) + n for k, n in increments.items()}
            if last_error is not None:
                changes["last_error"] = last_error
            if refused is not None:
                changes["refused"] = refused
            if last_success_utc_ms is not None:
                changes["last_success_utc_ms"] = last_success_utc_ms
            self._stats = dataclasses.replace(s, **changes)  # type: ignore[arg-type]


def _text(raw: bytes) -> str:
    """A response body for a log line: one line, short."""
    return " ".join(raw.decode("utf-8", errors="replace").split())[:200]
