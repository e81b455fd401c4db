"""The fleet benchmark's report: figures from one run, and the table that prints them."""

from __future__ import annotations

import argparse
import math
import os
import time
from collections import Counter
from dataclasses import dataclass

from _broker import Recorder
from _fleet_agents import AgentResult
from _fleet_brokers import FleetBroker
from _fleet_measure import (
    ProcSampler,
    Restarted,
    Wave,
    cold_start,
    percentile,
    reconnect_wave,
)

SETTLE_S = 5.0
"""Quiet time after a reconnect wave before the next restart."""


@dataclass
class Run:
    """What one scenario left behind, for :func:`build_report`."""

    receiver: Recorder
    results: list[AgentResult]
    sampler: ProcSampler
    restarts: list[Restarted]
    t_start: float
    t_steady: float
    steady_s: float
    steady_msgs_s: float
    steady_acked_s: float
    offline_seen: tuple[int, int]
    """``offline`` status messages the receiver got before the fleet stopped, and from how
    many boxes: Last Wills (and their copies) from the restarts."""
    retained: dict[str, tuple[int, int]]
    elapsed_s: float
    load: tuple[float, float]
    """The machine's 1-minute load average at the start and at the end of the run."""


@dataclass
class Report:
    broker: FleetBroker
    agents: int
    processes: int
    waves: list[Wave]
    others_accept: dict[str, bool | None]
    cpu: dict[str, tuple[float, float, float]]
    """label -> (steady mean %, peak % during restarts, max RSS MB)."""
    steady_msgs_s: float
    steady_acked_s: float
    steady_meas_s: float
    expected: int
    unique: int
    missing: int
    missing_detail: str
    duplicates: int
    unexpected: int
    dropped: int
    forwarder: Counter[str]
    offline_seen: tuple[int, int]
    """``offline`` status messages the receiver got before the fleet stopped, and from how
    many boxes: Last Wills (and their copies) from the restarts."""
    retained: dict[str, tuple[int, int]]
    """status endpoint -> (retained statuses seen by a new subscriber, of which online)."""
    elapsed_s: float
    load: tuple[float, float]

    def per_node(self, wave: Wave) -> dict[str, int]:
        """How many of a wave's boxes were on each node."""
        return dict(sorted(Counter(node_of(self.broker, d) for d in wave.devices).items()))


def node_of(broker: FleetBroker, device_id: str) -> str:
    """The broker node a box was given (round-robin by its number, see worker_specs)."""
    endpoints = broker.agent_endpoints()
    names = {endpoint: label for label, endpoint in broker.status_endpoints().items()}
    return names[endpoints[int(device_id.rsplit("-", 1)[1]) % len(endpoints)]]


def build_report(broker: FleetBroker, args: argparse.Namespace, run: Run) -> Report:
    results, sampler, restarts = run.results, run.sampler, run.restarts
    t_steady, steady_s = run.t_steady, run.steady_s
    waves = [cold_start(results)]
    waves += [reconnect_wave(r.label, results, r.t_stop, r.t_back, r.t_done) for r in restarts]
    labels = [*broker.pids(), "agents", "receiver"]
    cpu = {}
    for label in labels:
        mean, _ = sampler.cpu(label, t_steady, t_steady + steady_s)
        peaks = [sampler.cpu(label, r.t_stop, r.t_done + SETTLE_S)[1] for r in restarts]
        cpu[label] = (mean, max(peaks, default=math.nan), sampler.rss_max(label))
    received = run.receiver.measurements()
    got = Counter((m["device_id"], m["boot_id"], m["seq"]) for m in received)
    expected = {(r.device_id, r.boot_id, seq) for r in results for seq in range(1, r.added + 1)}
    forwarder: Counter[str] = Counter()
    for result in results:
        forwarder.update({key: value for key, value in result.forwarder.items()
                          if isinstance(value, int) and not isinstance(value, bool)})
    return Report(
        broker=broker, agents=args.agents, processes=args.processes, waves=waves,
        others_accept={r.label: r.others_accept for r in restarts}, cpu=cpu,
        steady_msgs_s=run.steady_msgs_s, steady_acked_s=run.steady_acked_s,
        steady_meas_s=args.agents * args.rate,
        expected=len(expected), unique=len(expected & got.keys()),
        missing=len(expected - got.keys()),
        missing_detail=describe_missing(expected - got.keys(), received, broker)
        if expected - got.keys() else "",
        duplicates=sum(got.values()) - len(got),
        unexpected=len(got.keys() - expected), dropped=sum(r.dropped_total for r in results),
        forwarder=forwarder, offline_seen=run.offline_seen, retained=run.retained,
        elapsed_s=run.elapsed_s, load=run.load)


def describe_missing(missing: set[tuple[str, str, int]], received: list[dict],
                     broker: FleetBroker) -> str:
    """Which boxes (by the endpoint they used) lost what, and when it was measured.

    The time of a missing measurement is taken from the closest earlier one that
    arrived (one a second per box), which is enough to line it up with a restart.
    """
    times: dict[tuple[str, int], int] = {(m["device_id"], m["seq"]): m["time_ms"]
                                         for m in received}
    per_endpoint: Counter[str] = Counter()
    stamps = []
    for device, _, seq in missing:
        per_endpoint[node_of(broker, device)] += 1
        earlier = [times[(device, s)] for s in range(seq - 1, max(0, seq - 600), -1)
                   if (device, s) in times][:1]
        stamps += earlier
    boxes = len({device for device, _, _ in missing})
    when = (f"measured {_clock(min(stamps))}..{_clock(max(stamps))}" if stamps else
            "before anything arrived")
    ports = ", ".join(f"{name}: {n}" for name, n in sorted(per_endpoint.items()))
    device = min(missing)[0]
    seqs = sorted(seq for d, _, seq in missing if d == device)
    return f"{boxes} boxes ({ports}), {when}; {device} lost seq {seqs[0]}..{seqs[-1]} " \
        f"({len(seqs)})"


def _clock(epoch_ms: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch_ms / 1000))


def fmt(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def print_report(report: Report) -> None:
    print(f"\n== {report.broker.name}: {report.broker.describe()}")
    print(f"   {report.agents} agents in {report.processes} processes, "
          f"run {report.elapsed_s:.0f} s; machine load average {report.load[0]:.1f} at "
          f"the start, {report.load[1]:.1f} at the end ({os.cpu_count()} cores)")
    print(f"{'wave':<16}{'boxes':>7}{'back':>6}{'down s':>8}{'p50 s':>7}{'p95 s':>7}"
          f"{'last s':>8}{'gap p50 ms':>11}{'gap p95 ms':>11}{'spread s':>9}{'peak/s':>7}"
          f"{'failed':>7}")
    for w in report.waves:
        print(f"{w.label:<16}{w.affected:>7}{w.reconnected:>6}{fmt(w.down_s):>8}"
              f"{fmt(percentile(w.after_back_s, 50)):>7}{fmt(percentile(w.after_back_s, 95)):>7}"
              f"{fmt(max(w.after_back_s, default=math.nan)):>8}"
              f"{fmt(percentile(w.gaps_ms, 50)):>11}{fmt(percentile(w.gaps_ms, 95)):>11}"
              f"{fmt(w.spread_s):>9}{w.peak_per_s:>7}{w.failed_attempts:>7}")
    for w in report.waves[1:]:
        print(f"{w.label}: boxes per node " + ", ".join(
            f"{label} {n}" for label, n in report.per_node(w).items()))
    for label, accepted in report.others_accept.items():
        if accepted is not None:
            print(f"during the {label}, the other node {'accepted' if accepted else 'REFUSED'} "
                  "a new MQTT client")
    print(f"{'process':<16}{'CPU steady %':>13}{'CPU peak % (restarts)':>23}{'RSS max MB':>12}")
    for label, (mean, peak, rss) in report.cpu.items():
        print(f"{label:<16}{fmt(mean):>13}{fmt(peak):>23}{fmt(rss):>12}")
    print(f"throughput (steady): {report.steady_meas_s:.0f} measurements/s offered, "
          f"{report.steady_acked_s:.0f}/s acknowledged to the boxes, "
          f"{report.steady_msgs_s:.0f} messages/s at the receiver")
    f = report.forwarder
    print(f"delivery: {report.expected} measurements numbered, {report.unique} received, "
          f"missing {report.missing}, duplicates {report.duplicates}, "
          f"unexpected {report.unexpected}; outbox dropped {report.dropped}")
    if report.missing:
        print(f"missing: {report.missing_detail}")
    print(f"agents: connects {f['connects']}, failed connects {f['connect_failures']}, "
          f"takeovers {f['takeovers']}, PUBACK timeouts {f['puback_timeouts']}, "
          f"rejected {f['rejected']}, crashes {f['crashes']}")
    print(f"status: {report.offline_seen[0]} 'offline' messages (Last Wills) from "
          f"{report.offline_seen[1]} boxes reached the receiver during the run")
    print("retained status seen by a new subscriber: " + ", ".join(
        f"{label} {n} ({online} online)" for label, (n, online) in report.retained.items()))
