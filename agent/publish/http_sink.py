"""What every HTTP sink does the same way: read the outbox at its own position, send,
and act on each answer as the server means it.

A sink (Sensor.Community, InfluxDB) is one of the outbox's readers beside the MQTT
forwarder: it claims rows after its own position, so its receiver being down for a
day holds back nothing else, and a row leaves the outbox only when every sink has
it. A subclass says how rows become requests (:meth:`HttpSink.plan`) and what a
status code means (:meth:`HttpSink.verdict`); this module does the rest:

* DELIVERED (2xx): the request's rows are acknowledged for this sink.
* REJECTED: this request can never succeed as it is. A request that can be split
  (:meth:`HttpSink.split`: a batch of lines) is sent again in halves, so one bad
  row costs only itself; what cannot be split is skipped for this sink
  (:meth:`HttpSink.reject`), counted, and its reason logged once per reason;
  the requests behind it go on.
* REFUSED: the server refuses this box itself (unknown node, wrong credentials,
  no such database). Logged once, clearly; the rows are kept and the sink waits
  ``refused_retry_s`` (jittered) before trying again, so fixing the cause on the
  server is all it takes.
* RETRY (5xx, 408, 429, a timeout, no connection): retried after a capped
  exponential backoff with full jitter (no fleet returns in lockstep); rows kept.

An acknowledgement becomes durable at the outbox's next commit: a kill -9 after the
server stored a request and before that commit sends it again (at-least-once, as
over MQTT); never is a row acknowledged before the server confirmed it.

HTTP is urllib from the standard library: a few small POSTs a minute need no
connection pool, and the box loads nothing more for them.
"""

from __future__ import annotations

import dataclasses
import http.client
import logging
import random
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic

from agent.clock import SYSTEM, Clock
from agent.config.delivery import DeliveryConfig
from agent.errors import StorageError
from agent.models import OutboxRecord
from agent.publish.delivery import Answer, R, Verdict, Work
from agent.storage import Outbox
from agent.supervision import Backoff, RestartPolicy, Retries, SupervisedThread

log = logging.getLogger(__name__)

IDLE_POLL_S = 5.0
RESPONSE_BYTES = 2048
"""Enough of an error body to log the server's reason."""
REASONS_REMEMBERED = 64
RESTARTS = RestartPolicy(first_delay_s=1.0, max_delay_s=300.0, give_up_after=None)
"""A crashing sink loop is restarted for ever: MQTT delivery must not stop for it."""


@dataclass(frozen=True)
class SinkStats:
    """Numbers for the heartbeat and the status page."""

    pushes: int = 0
    """Requests the server accepted."""
    delivered: int = 0
    """Measurements in requests the server stored."""
    skipped: int = 0
    """Measurements this sink does not take (not asked for, no name there, warming up)."""
    rejected: int = 0
    """Measurements in requests the server refused for good."""
    errors_total: int = 0
    """Failed attempts of any kind (network, 5xx, refusal, rejection)."""
    last_success_utc_ms: int | None = None
    last_error: str = ""
    refused: bool = False
    """The server refuses this box now: a person must act."""
    crashes: int = 0


class HttpSink(Generic[R]):
    """Sends committed rows in outbox order on a thread of its own; subclasses say what
    and where."""

    RECEIVER = "the server"
    """How log lines name the receiver."""

    def __init__(self, name: str, outbox: Outbox, config: DeliveryConfig, batch_rows: int, *,
                 rng: random.Random | None = None, clock: Clock = SYSTEM) -> None:
        self.name = name
        """The sink's name in the outbox (its position) and in the heartbeat."""
        self._outbox = outbox
        self._delivery = config
        self._batch_rows = batch_rows
        self._rng = rng or random.Random()
        self._clock = clock
        self._thread = SupervisedThread(name, self._serve, RESTARTS, self._crashed, clock=clock)
        self._stop_event = self._thread.stopping
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._stats = SinkStats()
        self._reasons: set[str] = set()

    # -- what a subclass says -------------------------------------------------------------

    def plan(self, records: Sequence[OutboxRecord], *, full: bool) -> Work[R]:
        """Requests for ``records`` (oldest first) and the rows to skip."""
        raise NotImplementedError

    def http_request(self, request: R) -> urllib.request.Request:
        raise NotImplementedError

    def verdict(self, answer: Answer) -> Verdict:
        """What a server's answer means (``delivery.verdict`` for most servers)."""
        raise NotImplementedError

    def split(self, request: R) -> list[R]:
        """Smaller requests that together carry ``request``; empty: it cannot be split."""
        return []

    def reject(self, request: R, answer: Answer) -> None:
        """Skip a request the server never takes: acknowledged for this sink, counted."""
        self._outbox.ack(request.row_ids, self.name)
        self.log_once(f"{answer.status} {answer.reason}", "%s rejected %s (HTTP %s: %s); its "
                      "%d measurements are skipped for %s", self.RECEIVER, request.label,
                      answer.status, answer.reason, len(request.row_ids), self.name)

    def subject(self) -> str:
        """What the receiver accepts or refuses, for log lines ("node raspi-...")."""
        return self.name

    def refusal(self, answer: Answer) -> str:
        """What a person must do when the box is refused (logged once per spell)."""
        return (f"{self.RECEIVER} refuses {self.subject()} "
                f"(HTTP {answer.status}: {answer.reason})")

    # -- control (other threads) ------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait up to ``timeout_s`` for the sink to end; True when it has."""
        return self._thread.join(timeout_s)

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
        return self._delivery.timeout_s

    # -- thread -------------------------------------------------------------------------

    def _serve(self) -> None:
        cursor = 0
        retries = Retries(Backoff(self._delivery.retry_min_s, self._delivery.retry_max_s,
                                  jitter=True), self._rng)
        while not self._stop_event.is_set():
            try:
                records = self._outbox.claim(cursor, self._batch_rows, self.name)
            except StorageError as exc:
                log.error("%s", exc)
                self._pause(IDLE_POLL_S)
                continue
            if not records:
                self._clock.wait(self._wake, IDLE_POLL_S)
                self._wake.clear()
                continue
            full = len(records) == self._batch_rows
            work = self.plan(records, full=full)
            if work.skip:
                self._outbox.ack(work.skip, self.name)
                self._bump(skipped=len(work.skip))
            pending = deque(work.requests)
            while pending:
                request = pending.popleft()
                answer = self._post(request)
                outcome = Verdict.RETRY if answer.status is None else self.verdict(answer)
                self._account(request, outcome, answer)
                if outcome is Verdict.RETRY:
                    self._pause(max(retries.failed(), min(answer.retry_after_s or 0.0,
                                               self._delivery.retry_max_s)))
                    break
                if outcome is Verdict.REFUSED:
                    self._pause(self._rng.uniform(0.5, 1.0) * self._delivery.refused_retry_s)
                    break
                if outcome is Verdict.REJECTED:
                    halves = self.split(request)
                    if halves:
                        pending.extendleft(reversed(halves))
                        continue
                    self.reject(request, answer)
                    self._bump(rejected=len(request.row_ids))
                retries.succeeded()
                if full or pending:
                    self._pause(self._delivery.pause_between_pushes_s)
                if self._stop_event.is_set():
                    return
            else:
                cursor = work.last_row_id
                continue
            cursor = 0  # start again at the oldest row this sink does not have

    def _account(self, request: R, outcome: Verdict, answer: Answer) -> None:
        """Acknowledge what was delivered; count and tell what failed."""
        if outcome is Verdict.DELIVERED:
            self._outbox.ack(request.row_ids, self.name)
            if self.stats().refused:
                log.info("%s accepts %s again", self.RECEIVER, self.subject())
            self._bump(pushes=1, delivered=len(request.row_ids), refused=False,
                       last_success_utc_ms=self._clock.wall_ms())
            return
        error = f"HTTP {answer.status}: {answer.reason}" if answer.status is not None \
            else answer.reason
        self._bump(errors_total=1, last_error=f"{request.label}: {error}"[:300])
        if outcome is Verdict.REFUSED:
            if not self.stats().refused:
                log.error("%s; measurements are kept and retried every ~%g s",
                          self.refusal(answer), self._delivery.refused_retry_s)
            self._bump(refused=True)
        elif outcome is Verdict.RETRY:
            log.warning("%s: sending %s failed (%s); retrying", self.name, request.label, error)

    def _post(self, request: R) -> Answer:
        try:
            with urllib.request.urlopen(self.http_request(request),
                                        timeout=self._delivery.timeout_s) as response:
                return Answer(response.status, "")
        except urllib.error.HTTPError as exc:
            with exc:
                return Answer(exc.code, _text(exc.read(RESPONSE_BYTES)),
                              _retry_after(exc.headers.get("Retry-After")))
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            return Answer(None, str(getattr(exc, "reason", exc)))

    def log_once(self, key: str, message: str, *args: object) -> None:
        """ERROR the first time a reason is seen, DEBUG after (a systematic rejection
        every window would otherwise fill the journal)."""
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
        self._clock.wait(self._stop_event, seconds)

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


def _retry_after(value: str | None) -> float | None:
    """A Retry-After in seconds (InfluxDB 2 sends one with 429 and 503); dates ignored."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
