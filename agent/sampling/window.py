"""Aggregation windows: many samples in, one measurement per quantity out.

Samples taken while the sensor warms up are withheld from a window that also
has settled samples, because a cold laser or heater biases the mean; a window
with only warm-up samples is still published, flagged, so the receiver sees
the sensor is alive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.config.profiles import Aggregation
from agent.models import Flags, Measurement, Quality, Stats
from agent.sampling.quality import Checked


@dataclass(slots=True)
class _Series:
    values: list[float] = field(default_factory=list)
    flags: set[Quality] = field(default_factory=set)
    warm_values: list[float] = field(default_factory=list)
    warm_flags: set[Quality] = field(default_factory=set)

    def add(self, sample: Checked) -> None:
        if Quality.WARMING_UP in sample.flags:
            self.warm_values.append(sample.value)
            self.warm_flags.update(sample.flags)
        else:
            self.values.append(sample.value)
            self.flags.update(sample.flags)

    def settled(self) -> tuple[list[float], Flags]:
        if self.values:
            return self.values, frozenset(self.flags)
        return self.warm_values, frozenset(self.warm_flags)


@dataclass(frozen=True, slots=True)
class Identity:
    """What every measurement of one sensor shares."""

    sensor_id: str
    units: Mapping[str, str]
    meta: Mapping[str, tuple[tuple[str, str | float], ...]]
    rules: dict[str, Aggregation] = field(default_factory=dict)
    """Per quantity, how a window combines its samples (default: arithmetic mean)."""


def combine(values: list[float], rule: Aggregation) -> float:
    """A window's value from its samples under ``rule``."""
    if rule is Aggregation.MAX:
        return max(values)
    if rule is Aggregation.MIN:
        return min(values)
    if rule is Aggregation.ENERGY_MEAN:
        return 10 * math.log10(math.fsum(10 ** (v / 10) for v in values) / len(values))
    return math.fsum(values) / len(values)


class Window:
    """Collects checked samples per quantity until :meth:`close`."""

    def __init__(self, identity: Identity, window_s: float, aggregate: bool) -> None:
        self._identity = identity
        self._window_s = window_s
        self._aggregate = aggregate
        self._series: dict[str, _Series] = {}
        self._opened_s: float | None = None

    def open(self, monotonic_s: float) -> None:
        """Say where the window began on the schedule: :meth:`close` spans from there."""
        self._opened_s = monotonic_s

    def add(self, sample: Checked) -> None:
        self._series.setdefault(sample.quantity, _Series()).add(sample)

    def __len__(self) -> int:
        return sum(len(s.values) + len(s.warm_values) for s in self._series.values())

    def close(self, utc_ms: int, monotonic_s: float) -> list[Measurement]:
        """Emit one measurement per quantity and start empty again.

        An aggregate's ``window_s`` is the time it really spans, at most the configured
        window: the partial window a worker closes when it stops (SIGTERM, a reload)
        covers only the seconds since the last one, and a receiver that places it at
        end − ``window_s`` (a SensorThings phenomenonTime) must not see it overlap the
        window before.
        """
        span = self._window_s
        if self._opened_s is not None and monotonic_s - self._opened_s < span * (1 - 1e-9):
            span = max(0.0, monotonic_s - self._opened_s)  # cut short (not float dust)
        out: list[Measurement] = []
        for quantity, series in self._series.items():
            values, flags = series.settled()
            if not values:
                continue
            stats = None
            if self._aggregate:
                stats = Stats(min(values), max(values), len(values), span)
            out.append(Measurement(
                sensor_id=self._identity.sensor_id, quantity=quantity,
                value=combine(values, self._identity.rules.get(quantity, Aggregation.MEAN)),
                unit=self._identity.units[quantity],
                utc_ms=utc_ms, monotonic_s=monotonic_s, flags=flags, stats=stats,
                meta=self._identity.meta.get(quantity, ())))
        self._series.clear()
        return out
