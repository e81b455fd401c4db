"""Supervision of the daemon's long-lived threads: crash → traceback, count, restart, give up.

Why: an unexpected exception ends a Python thread and nothing else notices —
``threading.excepthook`` prints to stderr and the rest of the process goes on
looking healthy (sampling, watchdog pings, a retained ``online``) while
nothing is delivered. Every long-lived loop therefore runs inside
:func:`supervise`: a crash is logged with its traceback, reported to the
owner (who counts it for the heartbeat and cleans up, e.g. drops the MQTT
connection uncleanly so the broker publishes the Last Will), and the loop is
started again after a capped exponential backoff. A component that keeps
crashing straight away is given up on, so its owner can fail loudly (the
daemon exits non-zero and systemd restarts it) instead of spinning.

This module imports nothing of ours: sampling and publishing both use it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    """How quickly to restart a crashed loop, and when to stop trying."""

    first_delay_s: float = 1.0
    max_delay_s: float = 60.0
    give_up_after: int | None = None
    """Consecutive crashes after which :func:`supervise` returns False; None: never."""
    healthy_after_s: float = 60.0
    """A run at least this long before it crashed starts the consecutive count afresh."""

    def delay_s(self, consecutive: int) -> float:
        return min(self.max_delay_s, self.first_delay_s * 2 ** min(consecutive - 1, 30))


def supervise(name: str, body: Callable[[], None], stop: threading.Event,
              policy: RestartPolicy, on_crash: Callable[[Exception], None], *,
              monotonic: Callable[[], float] = time.monotonic) -> bool:
    """Run ``body`` until it returns or ``stop`` is set, restarting it after each crash.

    ``on_crash`` runs right after every crash, before the backoff. Returns False
    when the policy gave up (the last crash is logged at CRITICAL), else True.
    """
    consecutive = 0
    while True:
        started = monotonic()
        try:
            body()
        except Exception as exc:
            on_crash(exc)
            consecutive = 1 if monotonic() - started >= policy.healthy_after_s \
                else consecutive + 1
            if policy.give_up_after is not None and consecutive >= policy.give_up_after:
                log.critical("%s crashed %d times in a row; giving up", name, consecutive,
                             exc_info=True)
                return False
            delay = policy.delay_s(consecutive)
            log.exception("%s crashed (%d in a row); restarting in %.1f s", name, consecutive,
                          delay)
            if stop.wait(delay):
                return True
        else:
            return True
