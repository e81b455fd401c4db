"""Seeded, bounded random walks: the slowly varying values behind the emulated sensors.

Air does not jump between two readings, so every emulator drifts its values a
little per sample from a seeded :class:`random.Random` (runs repeat), and a test
pins a value by giving it a step of 0 (then no random number is drawn at all, so
pinning one value leaves the others' sequences as they were).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass
class Walk:
    """A random walk kept inside [low, high]: additive, or multiplicative (log-normal
    steps, for quantities such as particle mass that span decades); constant at step 0."""

    value: float
    low: float
    high: float
    step: float
    multiplicative: bool = False

    @classmethod
    def unless_pinned(cls, pinned: float | None, start: float, low: float, high: float,
                      step: float) -> Walk:
        """A constant ``pinned`` value when a test gives one, else a walk from ``start``."""
        if pinned is not None:
            return cls(pinned, low, high, 0.0)
        return cls(start, low, high, step)

    def advance(self, rng: random.Random) -> float:
        if self.step:
            change = rng.gauss(0.0, self.step)
            moved = self.value * math.exp(change) if self.multiplicative else self.value + change
            self.value = min(self.high, max(self.low, moved))
        return self.value
