"""Figures of the fleet benchmark: process CPU/RSS from /proc, and reconnect waves.

Pure where it can be: :func:`reconnect_wave` turns the connect/drop times the
agents noted into the figures the issue asks for (how long after the broker
was back, the spacing between consecutive reconnects, the total spread, the
peak connect rate), so the same numbers can be recomputed from saved events.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from _fleet_agents import AgentResult

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def proc_times(pid: int) -> tuple[float, float] | None:
    """(CPU seconds used so far, RSS in MB) of a process, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # comm may contain spaces
    cpu_s = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
    return cpu_s, int(fields[21]) * PAGE_BYTES / 1e6


@dataclass(frozen=True)
class Sample:
    t: float
    label: str
    cpu_pct: float
    """Percent of one core over the last period."""
    rss_mb: float


class ProcSampler(threading.Thread):
    """Samples CPU and RSS of labelled process groups once per ``period_s``.

    ``sources`` is asked each time, because a restarted broker has a new pid.
    """

    def __init__(self, sources: Callable[[], dict[str, list[int]]],
                 period_s: float = 1.0) -> None:
        super().__init__(name="proc-sampler", daemon=True)
        self._sources = sources
        self._period_s = period_s
        self._halt = threading.Event()
        self._last: dict[int, tuple[float, float]] = {}  # pid -> (time, cpu seconds)
        self.samples: list[Sample] = []

    def run(self) -> None:
        while not self._halt.wait(self._period_s):
            now = time.monotonic()
            for label, pids in self._sources().items():
                cpu, rss, seen = 0.0, 0.0, False
                for pid in pids:
                    figures = proc_times(pid)
                    if figures is None:
                        continue
                    previous = self._last.get(pid)
                    self._last[pid] = (now, figures[0])
                    rss += figures[1]
                    if previous is not None and now > previous[0]:
                        cpu += (figures[0] - previous[1]) / (now - previous[0]) * 100
                        seen = True
                if seen:
                    self.samples.append(Sample(now, label, cpu, rss))

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def cpu(self, label: str, start: float, end: float) -> tuple[float, float]:
        """(mean, peak) CPU percent of one core for ``label`` between two times."""
        values = [s.cpu_pct for s in self.samples if s.label == label and start <= s.t <= end]
        return (sum(values) / len(values), max(values)) if values else (math.nan, math.nan)

    def rss_max(self, label: str) -> float:
        return max((s.rss_mb for s in self.samples if s.label == label), default=math.nan)


@dataclass(frozen=True)
class Restarted:
    """When one broker restart happened (monotonic times)."""

    label: str
    t_stop: float
    t_back: float
    """The broker listened again."""
    t_done: float
    """Every box was connected again (or the wait gave up)."""
    others_accept: bool | None
    """While it was down, did the other node(s) accept a new client? None: no others."""


@dataclass(frozen=True)
class Wave:
    """How one group of boxes came (back) to the broker."""

    label: str
    affected: int
    reconnected: int
    down_s: float
    """From the stop to the broker listening again (0 for the cold start)."""
    after_back_s: tuple[float, ...]
    """Per box that came back: seconds after the broker was listening again (on a cold
    start: after the box started)."""
    gaps_ms: tuple[float, ...]
    """Spacing between consecutive reconnects, in time order."""
    peak_per_s: int
    """Most connects accepted within any one second."""
    failed_attempts: int
    """Connect attempts that failed (broker still down, or refusing) before they made it."""

    spread_s: float = math.nan
    """From the first box back to the last."""
    devices: tuple[str, ...] = ()
    """The boxes in this wave."""


def reconnect_wave(label: str, results: Iterable[AgentResult], t_stop: float, t_back: float,
                   t_done: float) -> Wave:
    """Boxes whose connection dropped after ``t_stop`` (noticed before ``t_done``, the wave's
    end: a busy process may note a drop late), and when each was connected again."""
    back: list[float] = []
    devices: list[str] = []
    failed = 0
    for result in results:
        if not any(kind == "drop" and t_stop <= t <= t_done for kind, t in result.events):
            continue
        devices.append(result.device_id)
        ups = [t for kind, t in result.events if kind == "up" and t > t_stop]
        if ups:
            back.append(ups[0])
            failed += sum(1 for kind, t in result.events
                          if kind == "fail" and t_stop <= t <= ups[0])
    return _wave(label, devices, back, t_back - t_stop, [t - t_back for t in back],
                 failed=failed)


def cold_start(results: Iterable[AgentResult]) -> Wave:
    """The first connect of every box, counted from its own start (first-connect jitter)."""
    back: list[float] = []
    delays: list[float] = []
    devices: list[str] = []
    failed = 0
    for result in results:
        devices.append(result.device_id)
        ups = [t for kind, t in result.events if kind == "up"]
        if ups:
            back.append(ups[0])
            delays.append(ups[0] - result.started)
            failed += sum(1 for kind, t in result.events if kind == "fail" and t <= ups[0])
    return _wave("cold start", devices, back, 0.0, delays, failed=failed)


def _wave(label: str, devices: list[str], back: list[float], down_s: float,
          delays: list[float], *, failed: int) -> Wave:
    back = sorted(back)
    gaps = tuple((b - a) * 1000 for a, b in itertools.pairwise(back))
    return Wave(label, len(devices), len(back), down_s, tuple(sorted(delays)), gaps,
                _peak_per_second(back), failed, back[-1] - back[0] if back else math.nan,
                tuple(devices))


def _peak_per_second(times: Sequence[float]) -> int:
    """Largest number of sorted ``times`` inside any one-second window."""
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] > 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best
