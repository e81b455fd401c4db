"""A transaction record that cannot grow without bound.

Emulators keep what they were sent (commands, writes, reads) so a test can check the
driver's traffic byte for byte. ``lokaalmeten simulate`` runs the same emulators for
weeks: an ever-growing list there cost ~100 kB of memory a minute. ``BoundedLog`` is
still a list (tests compare it with ``==`` and index it), but once it holds twice
``keep`` entries it forgets all but the newest ``keep``: amortised O(1) per entry, and
every test sees its full history (none records that many transactions).
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")

KEEP = 1000
"""Entries kept after a trim; far more than any test's transactions."""


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
