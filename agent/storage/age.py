"""How old an outbox row is, when the wall clock can be stepped.

A wall clock can be stepped — by NTP on a Pi that booted at
1970, or by a spoofed time source — and a step must never erase a backlog.
So a row's age is measured on the clock that cannot step wherever that
clock is comparable:

1. Rows written during the current *kernel* boot (every agent boot is
   recorded in ``boots`` with the kernel's boot id) age on the monotonic
   clock: ``now_monotonic - row.monotonic_s``. Wall-clock steps, before or
   after an agent restart, cannot touch them.
2. Rows from an earlier kernel boot (after a reboot the monotonic clock
   restarts) can only age on the wall clock, and only while it is
   trustworthy: the current time and the row's stamp must both be plausible
   (not before ``PLAUSIBLE_SINCE_MS``: a stamp from an unsynced 1970 clock
   says nothing about age), and no step may have been seen since this
   outbox opened (``wall - monotonic`` moving by more than
   ``STEP_TOLERANCE_S`` between two checks). After a detected step this
   kind of pruning is suspended until the agent restarts; the row bound
   still holds.

Residual risk, documented in docs/operations.md: a wall-clock jump that
happens while the box is powered off makes rows of the previous kernel boot
look older (or younger) than they are.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

PLAUSIBLE_SINCE_MS = 1_704_067_200_000
"""2024-01-01 UTC: older than any build of this agent, so an earlier time is an unsynced clock."""
STEP_TOLERANCE_S = 10.0
"""NTP slews at most 0.5 ms/s; a larger change of ``wall - monotonic`` between checks is a step."""
_KERNEL_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def kernel_boot_id() -> str | None:
    """Linux's random id of this kernel boot; the monotonic clock is comparable within it."""
    try:
        return _KERNEL_BOOT_ID.read_text().strip() or None
    except OSError:
        return None


class AgeRule:
    """Prunes rows older than ``max_age_ms`` by the rule above; remembers wall-clock steps."""

    def __init__(self, max_age_ms: int, *, wall_ms: Callable[[], int],
                 monotonic: Callable[[], float], kernel_boot: str) -> None:
        self.kernel_boot = kernel_boot
        self._max_age_ms = max_age_ms
        self._wall_ms = wall_ms
        self._monotonic = monotonic
        self._wall_offset_ms: float | None = None
        self._wall_stepped = False

    def prune(self, conn: sqlite3.Connection) -> list[int]:
        """Delete the rows past the age bound (inside the caller's transaction); their ids."""
        this_kernel = "boot_id IN (SELECT boot_id FROM boots WHERE kernel_boot = ?)"
        now_monotonic = self._monotonic()
        pruned = [row_id for (row_id,) in conn.execute(
            f"DELETE FROM outbox WHERE monotonic_s < ? AND {this_kernel} RETURNING id",
            (now_monotonic - self._max_age_ms / 1000, self.kernel_boot))]
        now_ms = self._wall_ms()
        if self._wall_trusted(now_ms, now_monotonic):
            pruned += [row_id for (row_id,) in conn.execute(
                f"DELETE FROM outbox WHERE utc_ms >= ? AND utc_ms < ? AND NOT {this_kernel} "
                "RETURNING id", (PLAUSIBLE_SINCE_MS, now_ms - self._max_age_ms,
                                 self.kernel_boot))]
        return pruned

    def _wall_trusted(self, now_ms: int, now_monotonic: float) -> bool:
        """Plausible and not stepped since this outbox opened (the first sync is no step)."""
        if now_ms < PLAUSIBLE_SINCE_MS:
            return False
        offset_ms = now_ms - now_monotonic * 1000
        previous, self._wall_offset_ms = self._wall_offset_ms, offset_ms
        if previous is not None and abs(offset_ms - previous) > STEP_TOLERANCE_S * 1000 \
                and not self._wall_stepped:
            self._wall_stepped = True
            log.warning("wall clock stepped by %+.0f s: pruning rows of earlier boots by age "
                        "is suspended until the agent restarts", (offset_ms - previous) / 1000)
        return not self._wall_stepped
