"""Value types that travel from the drivers to the broker.

Everything here is a frozen dataclass: once a value has been measured it is a
fact, and nothing downstream may change it in place.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from enum import StrEnum


class Quality(StrEnum):
    """Per-measurement quality flags; published as their string values."""

    WARMING_UP = "warming_up"
    """Taken inside the sensor's warm-up time after start or wake."""
    OUT_OF_RANGE = "out_of_range"
    """Outside the sensor's physical range (kept only when the profile says flag)."""
    RETRIED = "retried"
    """Obtained only after a checksum failure or bus error was retried."""
    HIGH_HUMIDITY = "high_humidity"
    """Optical particle counts above ~90 %RH over-read; treat with care."""
    CALIBRATED = "calibrated"
    """A configured offset/scale was applied; the raw value is in ``raw``."""


Flags = frozenset[Quality]
NO_FLAGS: Flags = frozenset()


@dataclass(frozen=True, slots=True)
class Reading:
    """One value as a driver decodes it, before the sampler stamps time and unit.

    Drivers return readings rather than measurements so they stay pure wire
    code: the unit and valid range come from the sensor's firmware profile,
    the clocks from the sampler.
    """

    quantity: str
    value: float
    flags: Flags = NO_FLAGS


@dataclass(frozen=True, slots=True)
class Stats:
    """Summary of the samples behind an aggregated measurement."""

    minimum: float
    maximum: float
    count: int
    window_s: float


@dataclass(frozen=True, slots=True)
class Measurement:
    """A value with its unit, time and provenance: the one type that is published.

    ``utc_ms`` is the wall-clock time (epoch milliseconds, UTC) for receivers;
    ``monotonic_s`` is the local monotonic clock, used for scheduling and never
    published. ``value`` is the mean when ``stats`` is set.
    """

    sensor_id: str
    quantity: str
    value: float
    unit: str
    utc_ms: int
    monotonic_s: float
    flags: Flags = NO_FLAGS
    stats: Stats | None = None
    meta: tuple[tuple[str, str | float], ...] = field(default=())
    """Small provenance facts (calibration applied, RH source), as sorted pairs."""
    window_s: float | None = None
    """The time the value covers when it is no aggregate of samples (a counting
    interval); an aggregate's is ``stats.window_s``. Read either as :attr:`span_s`."""

    @property
    def span_s(self) -> float | None:
        """The time the value covers, ending at ``utc_ms`` (None: an instant, a state)."""
        return self.stats.window_s if self.stats is not None else self.window_s


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """A measurement as stored in the outbox: numbered per boot, awaiting PUBACK."""

    row_id: int
    boot_id: str
    seq: int
    measurement: Measurement


class MeasurementQueue(queue.Queue[list[Measurement]]):
    """Batches of measurements handed from a producer thread to the main loop."""

    def drain(self) -> list[Measurement]:
        """Everything queued since the last call, in arrival order, without blocking."""
        out: list[Measurement] = []
        while True:
            try:
                out.extend(self.get_nowait())
            except queue.Empty:
                return out
