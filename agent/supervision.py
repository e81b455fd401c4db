"""One way to retry and one way to keep a worker running: backoff, crash → count → restart.

Why: an unexpected exception ends a Python thread and nothing else notices —
``threading.excepthook`` prints to stderr and the rest of the process goes on
looking healthy (sampling, watchdog pings, a retained ``online``) while
nothing is delivered. Every long-lived loop therefore runs inside
:func:`supervise`: a crash is logged with its traceback, reported to the
owner (who counts it for the heartbeat and cleans up, e.g. drops the MQTT
connection uncleanly so the broker publishes the Last Will), and the loop is
started again after a capped exponential backoff. A component that keeps
crashing straight away is given up on, so its owner can fail loudly (the
daemon exits non-zero and systemd restarts it) instead of spinning. A loop whose
work ends in a way that is not a bug but still calls for a fresh start (a counter
process that died or hung) raises :class:`Restart` and is handled the same way.

Every component with such a loop (a sensor worker, the MQTT forwarder, an HTTP sink,
a camera's counter supervisor) owns a :class:`SupervisedThread` rather than being a
``Thread``: the thread, its stop event and the restart loop are set up in one place,
and a component shows its callers only start, stop and join, never a ``run`` anyone
could call or override its own way.

Every retry loop (the MQTT reconnect, a camera stream, a crashed thread, a counter
process) waits by one :class:`Backoff` policy and keeps its state in one
:class:`Retries`, so the rule "double from the first wait up to the cap, back to
the first after a success" is written once. Waits go through the injected
:class:`~agent.clock.Clock`, so tests drive them instead of sleeping.

This module imports only the clock: sampling, publishing and vision all use it.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from agent.clock import SYSTEM, Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff: the wait before the ``attempt``-th retry in a row.

    With ``jitter`` the wait is drawn from [0, that wait] ("full jitter"): a fleet of
    boxes that lost the same broker must not come back in lockstep.
    """

    first_delay_s: float = 1.0
    max_delay_s: float = 60.0
    jitter: bool = False

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait before retry ``attempt`` (from 1); ``rng`` draws the jitter."""
        ceiling = min(self.max_delay_s, self.first_delay_s * 2 ** min(attempt - 1, 30))
        return (rng or random.Random()).uniform(0.0, ceiling) if self.jitter else ceiling


@dataclass(frozen=True)
class RestartPolicy(Backoff):
    """How quickly to restart a crashed loop, and when to stop trying."""

    give_up_after: int | None = None
    """Consecutive crashes after which :func:`supervise` returns False; None: never."""
    healthy_after_s: float = 60.0
    """A run at least this long before it crashed starts the consecutive count afresh."""


class Retries:
    """One retry loop's state: failures in a row under a :class:`Backoff`."""

    def __init__(self, backoff: Backoff, rng: random.Random | None = None) -> None:
        self.backoff = backoff
        self.attempt = 0
        """Failures since the last success."""
        self._rng = rng or random.Random()

    def failed(self) -> float:
        """Count a failure; the wait before the next try."""
        self.attempt += 1
        return self.backoff.delay_s(self.attempt, self._rng)

    def succeeded(self) -> None:
        """The next failure waits the first delay again."""
        self.attempt = 0


class Restart(Exception):
    """Raised by a supervised body whose work ended and must start afresh, without being a
    bug (a counter process that exited or hung): logged as a warning, no traceback."""


def supervise(name: str, body: Callable[[], None], stop: threading.Event,
              policy: RestartPolicy, on_crash: Callable[[Exception], None], *,
              clock: Clock = SYSTEM) -> bool:
    """Run ``body`` until it returns or ``stop`` is set, restarting it after each crash.

    ``on_crash`` runs right after every crash, before the backoff. Returns False
    when the policy gave up (the last crash is logged at CRITICAL), else True.
    """
    retries = Retries(policy)
    while True:
        started = clock.monotonic()
        try:
            body()
        except Exception as exc:
            on_crash(exc)
            if clock.monotonic() - started >= policy.healthy_after_s:
                retries.succeeded()
            delay = retries.failed()
            if policy.give_up_after is not None and retries.attempt >= policy.give_up_after:
                log.critical("%s crashed %d times in a row; giving up", name, retries.attempt,
                             exc_info=True)
                return False
            if isinstance(exc, Restart):
                log.warning("%s: %s; restart %d in %.1f s", name, exc, retries.attempt, delay)
            else:
                log.exception("%s crashed (%d in a row); restarting in %.1f s", name,
                              retries.attempt, delay)
            if clock.wait(stop, delay):
                return True
        else:
            return True


class SupervisedThread:
    """A component's long-lived loop on a daemon thread it owns, run by :func:`supervise`.

    The component hands in its loop (``body``), what a crash means to it
    (``on_crash``: count it, drop a connection, release a bus) and what must happen
    on the way out (``on_exit``: a partial window, a sensor put to sleep), and stops
    it by setting :attr:`stopping`, the event every wait of its loop watches.
    """

    def __init__(self, name: str, body: Callable[[], None], policy: RestartPolicy,
                 on_crash: Callable[[Exception], None], *, clock: Clock = SYSTEM,
                 on_exit: Callable[[], None] | None = None) -> None:
        self.name: Final = name
        self.stopping: Final = threading.Event()
        """Set to end the loop: :func:`supervise` neither restarts it nor waits out a backoff."""
        self.gave_up = False
        """The policy gave up on a loop that kept crashing; its owner decides what follows."""
        self._body = body
        self._policy = policy
        self._on_crash = on_crash
        self._on_exit = on_exit
        self._clock = clock
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait up to ``timeout_s`` for the loop to end; True when it has."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        self.gave_up = not supervise(self.name, self._body, self.stopping, self._policy,
                                     self._on_crash, clock=self._clock)
        if self._on_exit is not None:
            self._on_exit()
