"""A transaction record that cannot grow without bound.

Emulators keep what they were sent (commands, writes, reads) so a test can check the
driver's traffic byte for byte. ``lokaalmeten simulate`` runs the same emulators for
weeks: an ever-growing list there cost ~100 kB of memory a minute. ``BoundedLog`` is
still a list (tests compare it with ``==`` and index it), but once it holds twice
``keep`` entries it forgets all but the newest ``keep``: amortised O(1) per entry, and
every test sees its full history (none records that many transactions).

``keep`` is small because the bound is also how long ``simulate`` takes to reach its
steady memory: with 2000 entries the logs of devices read every 5 s grew for an hour
and more (about 40 kB a minute for the Sensirion ones together, measured with
tracemalloc), which a soak could not tell from a leak; 100 fill in minutes.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")

KEEP = 50
"""Entries kept after a trim; more than any test's transactions (they pass at 50)."""


class BoundedLog(list[T]):
    """A list whose ``append`` trims the oldest entries past ``2 * keep``."""

    def __init__(self, keep: int = KEEP) -> None:
        if keep < 1:
            raise ValueError("keep must be >= 1")
        super().__init__()
        self.keep = keep

    def append(self, item: T) -> None:
        super().append(item)
        if len(self) >= 2 * self.keep:
            del self[: len(self) - self.keep]
