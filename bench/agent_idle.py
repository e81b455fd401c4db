"""Idle cost of the daemon: RSS and CPU of `lokaalmeten simulate` with one SDS011.

    python bench/agent_idle.py [--seconds 60] [--interval 1]

Runs the real daemon (emulated SDS011 inside the process, so the figure slightly
overstates a hardware box) against a local Mosquitto on a free port and samples
/proc for the process: RSS at the end and CPU time over the run.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _broker import Broker

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """
device_id = "bench-box"
[mqtt]
first_connect_jitter_s = 0
[sensors.pm]
model = "sds011"
port = "emulated"
interval_s = {interval}
window_s = 60
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--interval", type=float, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    broker = Broker(work)
    broker.start()
    config = work / "agent.toml"
    config.write_text(CONFIG.format(interval=args.interval))
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "simulate", "--config", str(config),
         "--broker", f"{broker.host}:{broker.port}", "--state-dir", str(work / "state"),
         "--log-level", "WARNING"], cwd=ROOT, stderr=subprocess.DEVNULL)
    time.sleep(5)  # start-up (imports, first connect) is not idle cost
    cpu_start, wall_start = cpu_seconds(process.pid), time.monotonic()
    time.sleep(args.seconds)
    cpu = cpu_seconds(process.pid) - cpu_start
    wall = time.monotonic() - wall_start
    rss = rss_mb(process.pid)
    process.send_signal(signal.SIGTERM)
    process.wait(20)
    broker.stop()
    print(f"one SDS011 sampled every {args.interval:g} s, {wall:.0f} s measured: "
          f"CPU {100 * cpu / wall:.2f} % of one core, RSS {rss:.1f} MB")


if __name__ == "__main__":
    main()
