"""Soak: RSS and CPU of the daemon with every simulated sensor, over half an hour.

    nice -n 10 python bench/soak.py [--minutes 30] [--every 30] [--warmup 120]

Runs `lokaalmeten simulate` with examples/simulated.toml (every supported sensor on its
wire-level emulator, the microphone's simulated street noise and, when the test video is
fetched, the people counter) against a Mosquitto of its own on a free port, and samples
/proc every ``--every`` seconds: the daemon's RSS and the private memory it has mapped
(VmData), the RSS of its child processes (the counter's zygote and counters), and the CPU
the whole tree used since the last sample.
A leak is a slope, so the end is a least-squares fit of RSS over time after the warm-up,
in MB per hour: "flat" is a number; the slope of each quarter beside it tells a leak
(steady) from caches and heap filling up (falling towards 0), and the mapped size tells
RSS that grows into memory already reserved (bounded by it) from memory newly mapped. The
subscriber counts what arrived, so a soak that stopped delivering cannot pass for a flat
one. The daemon gets the systemd unit's ``Environment=`` settings (OPENBLAS_NUM_THREADS,
MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_), so the figures are those of the daemon as
installed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _broker import Broker, Recorder, free_port
from agent_idle import cpu_seconds, status_mb

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "simulated.toml"
UNIT = ROOT / "systemd" / "lokaalmeten-agent.service"


@dataclass(frozen=True)
class Sample:
    elapsed_s: float
    daemon_rss_mb: float
    daemon_data_mb: float
    """Private writable memory the daemon has mapped (VmData), touched or not: RSS that
    grows while this stays put is first touches of memory already reserved (malloc's
    heaps, Python's arenas, thread stacks), bounded by it; a leak maps more."""
    children_rss_mb: float
    children: int
    cpu_percent: float
    """Of one core, daemon and children together, since the previous sample."""
    messages: int


def unit_environment() -> dict[str, str]:
    """The unit's ``Environment=`` variables: they change how much memory the daemon
    keeps (one OpenBLAS thread, two malloc arenas, a fixed mmap threshold), so a soak
    without them measures another daemon."""
    found: dict[str, str] = {}
    for line in UNIT.read_text().splitlines():
        if line.startswith("Environment="):
            for item in shlex.split(line.removeprefix("Environment=")):
                name, _, value = item.partition("=")
                found[name] = value
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children of children too), from /proc."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:  # the task ended meanwhile
                continue
            found += kids
            todo += kids
    return found


def tree_cpu_s(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each live process; one that ended meanwhile is left out."""
    found: dict[int, float] = {}
    for pid in pids:
        try:
            found[pid] = cpu_seconds(pid)
        except OSError:
            continue
    return found


def cpu_used_s(before: dict[int, float], now: dict[int, float]) -> float:
    """CPU seconds the tree used between two readings, process by process.

    Why not the difference of the sums: a counter the daemon replaced takes its
    CPU time with it, and the sums then drop (a soak once printed -2465 %). A
    process seen only now counts whole (it started after ``before``); one that
    ended meanwhile cannot be read any more, so its last stretch is missed,
    never subtracted.
    """
    return sum(max(0.0, used - before.get(pid, 0.0)) for pid, used in now.items())


def take(pid: int, start: float, cpu_before: dict[int, float], wall_before: float,
         recorder: Recorder) -> tuple[Sample, dict[int, float]]:
    children = descendants(pid)
    cpu_now = tree_cpu_s([pid, *children])
    now = time.monotonic()
    children_rss = 0.0
    for child in children:
        try:
            children_rss += status_mb(child)
        except OSError:
            continue
    sample = Sample(now - start, status_mb(pid), status_mb(pid, "VmData"), children_rss,
                    len(children),
                    100 * cpu_used_s(cpu_before, cpu_now) / max(now - wall_before, 1e-9),
                    len(recorder.on("/measurements")))
    return sample, cpu_now


def slope_mb_per_h(samples: list[Sample], value: str) -> float:
    """Least-squares slope of ``value`` over time, in MB per hour (nan with < 2 samples)."""
    if len(samples) < 2:
        return float("nan")
    hours = [s.elapsed_s / 3600 for s in samples]
    return statistics.linear_regression(hours, [getattr(s, value) for s in samples]).slope


def run(minutes: float, every_s: float, warmup_s: float, work: Path) -> list[Sample]:
    broker = Broker(work)
    broker.start()
    recorder = Recorder(broker, topic="lokaalmeten/#").start()
    unit_env = unit_environment()
    print("unit environment: " + " ".join(f"{k}={v}" for k, v in unit_env.items()))
    env = {**os.environ, **unit_env, "PYTHONUNBUFFERED": "1"}
    # The status page on a free port, as the broker: a second soak beside this one (or any
    # agent on the host) would otherwise hold 8470, and this daemon would run without its
    # page and that page's thread, another daemon than the one installed.
    config = work / "simulated.toml"
    config.write_text(EXAMPLE.read_text() + f"\n[status]\nport = {free_port()}\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "simulate", "--config", str(config),
         "--broker", f"{broker.host}:{broker.port}", "--state-dir", str(work / "state"),
         "--log-level", "WARNING"], cwd=work, env=env,
        stderr=(work / "agent.log").open("wb"))
    samples: list[Sample] = []
    try:
        time.sleep(warmup_s)  # imports, first connect, the counter's model: not steady state
        start = wall = time.monotonic()
        cpu = tree_cpu_s([process.pid, *descendants(process.pid)])
        print(f"{'min':>6} {'daemon MB':>10} {'mapped MB':>10} {'children MB':>12} {'procs':>5} "
              f"{'CPU %':>6} {'messages':>9}", flush=True)
        while time.monotonic() - start < minutes * 60:
            time.sleep(every_s)
            if process.poll() is not None:
                raise SystemExit(f"the daemon exited ({process.returncode}); see "
                                 f"{work / 'agent.log'}")
            sample, cpu = take(process.pid, start, cpu, wall, recorder)
            wall = time.monotonic()
            samples.append(sample)
            print(f"{sample.elapsed_s / 60:6.1f} {sample.daemon_rss_mb:10.1f} "
                  f"{sample.daemon_data_mb:10.1f} "
                  f"{sample.children_rss_mb:12.1f} {sample.children:5d} "
                  f"{sample.cpu_percent:6.1f} {sample.messages:9d}", flush=True)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        recorder.stop()
        broker.stop()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30, help="measured duration")
    parser.add_argument("--every", type=float, default=30, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=120,
                        help="seconds after start before measuring")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    samples = run(args.minutes, args.every, args.warmup, work)
    if not samples:
        raise SystemExit("no samples: --minutes shorter than --every?")
    cpu = [s.cpu_percent for s in samples]
    print(f"\n{len(samples)} samples over {samples[-1].elapsed_s / 60:.1f} min after "
          f"{args.warmup:g} s warm-up; {samples[-1].messages} measurement messages received")
    later = samples[len(samples) // 2:]  # caches still filling show in the first half only
    quarters = [samples[k * len(samples) // 4:(k + 1) * len(samples) // 4] for k in range(4)]
    for label, value in (("daemon RSS   ", "daemon_rss_mb"), ("daemon mapped", "daemon_data_mb"),
                         ("children RSS ", "children_rss_mb")):
        print(f"{label} {getattr(samples[0], value):.1f} → {getattr(samples[-1], value):.1f} MB, "
              f"slope {slope_mb_per_h(samples, value):+.2f} MB/h "
              f"(second half {slope_mb_per_h(later, value):+.2f} MB/h; by quarter "
              + " ".join(f"{slope_mb_per_h(q, value):+.2f}" for q in quarters) + ")")
    print(f"CPU (one core = 100 %): mean {statistics.fmean(cpu):.1f} %, "
          f"median {statistics.median(cpu):.1f} %, max {max(cpu):.1f} %")
    print(f"log: {work / 'agent.log'}")


if __name__ == "__main__":
    main()
