"""Idle cost of the daemon: RSS and CPU of `lokaalmeten simulate` with one SDS011.

    python bench/agent_idle.py [--seconds 60] [--interval 1] [--page off,idle,open]

Runs the real daemon (emulated SDS011 inside the process, so the figure slightly
overstates a hardware box) against a local Mosquitto on a free port and samples
/proc for the process: RSS at the end and CPU time over the run. Once per status
page mode: ``off`` (``[status] enabled = false``), ``idle`` (the page served but never
asked) and ``open`` (a browser's traffic: the page, its assets and every quantity's
history once, then /api/status every 10 s, as the open page does).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from _broker import Broker

from tests.mqtt_broker import free_port

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """
device_id = "bench-box"
[mqtt]
first_connect_jitter_s = 0
[status]
enabled = {enabled}
port = {port}
[sensors.pm]
model = "sds011"
port = "emulated"
interval_s = {interval}
window_s = 60
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_mb(pid: int, field: str = "VmRSS") -> float:
    """A size from /proc/PID/status in MB: ``VmRSS`` (resident) or ``VmData`` (private
    writable memory mapped, touched or not)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def browse(url: str, paths: list[str]) -> None:
    for path in paths:
        try:
            with urllib.request.urlopen(url + path, timeout=10) as response:
                response.read()
        except urllib.error.HTTPError as exc:  # no history yet is a 404, as for the page
            if exc.code != 404:
                raise


def measure(broker: Broker, work: Path, mode: str, seconds: float, interval: float) -> str:
    port = free_port()
    config = work / f"agent-{mode}.toml"
    config.write_text(CONFIG.format(enabled=str(mode != "off").lower(), port=port,
                                    interval=interval))
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "simulate", "--config", str(config),
         "--broker", f"{broker.host}:{broker.port}", "--state-dir", str(work / mode),
         "--log-level", "WARNING"], cwd=ROOT, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        time.sleep(5)  # start-up (imports, first connect) is not idle cost
        if mode == "open":
            browse(url, ["/", "/app.js", "/style.css", "/api/status",
                         "/api/history?sensor=pm&quantity=pm2_5",
                         "/api/history?sensor=pm&quantity=pm10"])
        cpu_start, wall_start = cpu_seconds(process.pid), time.monotonic()
        while time.monotonic() - wall_start < seconds:
            time.sleep(min(10.0, seconds - (time.monotonic() - wall_start)))
            if mode == "open":
                browse(url, ["/api/status"])
        cpu = cpu_seconds(process.pid) - cpu_start
        wall = time.monotonic() - wall_start
        rss = status_mb(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
    return (f"status page {mode:4}: one SDS011 sampled every {interval:g} s, {wall:.0f} s "
            f"measured: CPU {100 * cpu / wall:.2f} % of one core, RSS {rss:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--interval", type=float, default=1)
    parser.add_argument("--page", default="off,idle,open",
                        help="status page modes to measure, comma-separated")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    broker = Broker(work)
    broker.start()
    try:
        for mode in args.page.split(","):
            print(measure(broker, work, mode, args.seconds, args.interval), flush=True)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
