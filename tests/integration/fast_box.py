"""The daemon as a process for integration tests: a config head with quick reconnects and
commits, and ``lokaalmeten simulate`` started and signalled as systemd would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.mqtt_broker import Broker

ROOT = Path(__file__).resolve().parents[2]


def fast_head(device_id: str, health_interval_s: float) -> str:
    """TOML for a box that reconnects, commits and reports quickly (sensors follow)."""
    return f"""
device_id = "{device_id}"
[mqtt]
keepalive_s = 5
first_connect_jitter_s = 0
reconnect_min_s = 0.2
reconnect_max_s = 1.0
[storage]
commit_interval_s = 0.5
[health]
interval_s = {health_interval_s}
min_send_interval_s = {health_interval_s}
refresh_s = {health_interval_s}
"""


AIR = """[sensors.pm]
model = "sds011"
port = "/dev/ttyUSB0"
interval_s = 1
window_s = 2
warmup_s = 3
[sensors.climate]
model = "bme280"
bus = 1
interval_s = 1
window_s = 2
warmup_s = 0
"""
"""A particulate and a climate sensor on their emulators, a 2 s window each: what the
platform tests send on."""


class SimulatedBox:
    """``lokaalmeten simulate`` as a process: config, state directory and log in ``tmp_path``."""

    def __init__(self, tmp_path: Path, broker: Broker, config: str = "") -> None:
        self.config = tmp_path / "agent.toml"
        if config:
            self.config.write_text(config)
        self.state = tmp_path / "state"
        self.log = tmp_path / "agent.log"
        self.broker = broker
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent", "simulate", "--config", str(self.config),
                 "--broker", f"{self.broker.host}:{self.broker.port}",
                 "--state-dir", str(self.state)], stdout=log, stderr=log,
                env={**os.environ, "PYTHONPATH": str(ROOT)})

    def signal(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum`` (SIGTERM: systemd's stop) and return the exit code."""
        assert self.process is not None, "not started"
        self.process.send_signal(signum)
        code = self.process.wait(30)
        self.process = None
        return code

    def close(self) -> None:
        """Whatever a failed test left running is killed (fixture teardown)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
