"""People counting through the whole daemon: camera → counter process → outbox → Mosquitto.

Runs ``python -m agent simulate`` / ``run`` as a user would, with a camera on
vtest.avi and on a local MJPEG-over-HTTP camera, and checks what arrives on
MQTT: counts with their units, immediate density alerts, the camera's health,
a restarted counter process, and a camera that is not there.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from tests.integration.fast_box import fast_head
from tests.mqtt_broker import Broker, Recorder, wait_until
from tests.vision.streams import INT8_MODEL, MjpegServer, require_media, vtest_frames

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "payload.schema.json").read_text())
pytestmark = pytest.mark.slow

HEAD = fast_head("cam-box", 2)


def camera_section(source: str, interval_s: int = 2) -> str:
    return f"""
[cameras.street]
source = "{source}"
model = "{INT8_MODEL}"
interval_s = {interval_s}
suppress_below = 0  # every figure, so that every quantity and unit shows up
[[cameras.street.lines]]
name = "path"
x1 = 230
y1 = 340
x2 = 230
y2 = 170
[[cameras.street.zones]]
name = "square"
polygon = [[0, 0], [768, 0], [768, 576], [0, 576]]
area_m2 = 2.0
density_on = 2.0
density_off = 1.0
"""


class Daemon:
    def __init__(self, tmp_path: Path, broker: Broker) -> None:
        self.tmp_path, self.broker = tmp_path, broker
        self.log = tmp_path / "agent.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, command: str, config_text: str) -> None:
        """``simulate`` takes the broker and state dir as options; ``run`` from the file."""
        config = self.tmp_path / "agent.toml"
        state = self.tmp_path / "state"
        extra: list[str] = []
        if command == "run":
            config_text = config_text.replace(
                "[mqtt]\n", f'[mqtt]\nhost = "{self.broker.host}"\nport = {self.broker.port}\n')
            config_text = config_text.replace(
                "[storage]\n", f'[storage]\npath = "{state / "outbox.sqlite"}"\n')
        else:
            extra = ["--broker", f"{self.broker.host}:{self.broker.port}",
                     "--state-dir", str(state)]
        config.write_text(config_text)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent", command, "--config", str(config), *extra],
                stdout=log, stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT)})

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        self.process = None
        return code

    def counter_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"counter process (\d+) started",
                                           self.log.read_text())]


@pytest.fixture
def daemon(tmp_path: Path, broker: Broker) -> Iterator[Daemon]:
    d = Daemon(tmp_path, broker)
    yield d
    if d.process is not None:
        d.process.kill()
        d.process.wait()


def camera_values(recorder: Recorder, quantity: str) -> list[dict]:
    return [m for m in recorder.measurements()
            if m["sensor"] == "street" and m["quantity"] == quantity]


def check_payloads(recorder: Recorder) -> None:
    for message in recorder.on("/measurements") + recorder.on("/health"):
        jsonschema.validate(json.loads(message.payload), SCHEMA)


def test_simulate_counts_vtest_and_publishes_counts_alerts_and_health(
        daemon: Daemon, recorder: Recorder) -> None:
    video = require_media()
    daemon.start("simulate", HEAD + camera_section(str(video)))
    assert wait_until(lambda: len(camera_values(recorder, "frames")) >= 3, 90), \
        daemon.log.read_text()[-3000:]
    assert wait_until(lambda: camera_values(recorder, "zone_square_density_alert"), 30)
    assert wait_until(lambda: camera_values(recorder, "restarts_total"), 30)
    assert daemon.stop() == 0
    check_payloads(recorder)
    units = {m["quantity"]: m["unit"] for m in recorder.measurements() if m["sensor"] == "street"}
    assert {"line_path_in": "{person}", "line_path_out": "{person}",
            "zone_square_occupancy_mean": "{person}", "zone_square_occupancy_max": "{person}",
            "zone_square_density_mean": "{person}/m2", "zone_square_density_max": "{person}/m2",
            "zone_square_density_alert": "1", "occupancy_mean": "{person}",
            "occupancy_max": "{person}", "fps": "/s", "inference_ms_p50": "ms",
            "inference_ms_p95": "ms", "frames": "{frame}", "frames_inferred": "{frame}",
            "frames_dropped_total": "{frame}", "source_reconnects_total": "1", "up": "1",
            "source_up": "1", "restarts_total": "1",
            "records_rejected_total": "1"}.items() <= units.items()
    assert all(m["value"] == 0 for m in camera_values(recorder, "records_rejected_total"))
    full = camera_values(recorder, "frames")[1:-1]  # whole intervals (not the first or last)
    assert all(m["time_ms"] % 2000 == 0 and 15 <= m["value"] <= 21 for m in full), full
    occupancy = [m["value"] for m in camera_values(recorder, "occupancy_max")]
    assert max(occupancy) >= 3, "vtest shows three to nine people"
    alert = camera_values(recorder, "zone_square_density_alert")[0]
    assert alert["value"] == 1
    closing = next(m for m in camera_values(recorder, "frames")
                   if m["time_ms"] > alert["time_ms"])  # alert times are floored seconds
    assert alert["seq"] < closing["seq"], "sent at once, before its interval closed"
    assert camera_values(recorder, "up")[0]["value"] == 1
    assert all(m["value"] == 0 for m in camera_values(recorder, "restarts_total"))


def test_run_counts_an_mjpeg_camera_and_restarts_a_killed_counter(
        daemon: Daemon, recorder: Recorder) -> None:
    camera = MjpegServer(vtest_frames(0, 200), fps=10).start()
    try:
        daemon.start("run", HEAD + camera_section(camera.url))
        assert wait_until(lambda: len(camera_values(recorder, "frames")) >= 2, 90), \
            daemon.log.read_text()[-3000:]
        assert wait_until(daemon.counter_pids, 10)
        os.kill(daemon.counter_pids()[0], signal.SIGKILL)
        assert wait_until(lambda: len(daemon.counter_pids()) == 2, 30), \
            daemon.log.read_text()[-3000:]
        assert wait_until(lambda: any(m["value"] >= 1 for m in camera_values(
            recorder, "restarts_total")), 30)
        before = len(camera_values(recorder, "frames"))
        assert wait_until(lambda: any(
            m["value"] > 0 for m in camera_values(recorder, "frames")[before:]), 60), \
            "counting resumed after the restart"
        assert daemon.stop() == 0
    finally:
        camera.stop()
    check_payloads(recorder)
    assert len(camera.connections) >= 2, "the restarted counter opened the stream again"
    assert max(m["value"] for m in camera_values(recorder, "occupancy_max")) >= 2
    assert "killing" not in daemon.log.read_text()


def test_a_camera_that_is_not_there_keeps_retrying_and_sensors_go_on(
        daemon: Daemon, recorder: Recorder, tmp_path: Path) -> None:
    sensor = '[sensors.pm]\nmodel = "sds011"\nport = "/dev/ttyUSB0"\ninterval_s = 1\n' \
             'window_s = 2\nwarmup_s = 0\n'
    daemon.start("simulate", HEAD + sensor + camera_section(str(tmp_path / "absent.avi")))
    assert wait_until(lambda: len(camera_values(recorder, "frames")) >= 2 and [
        m for m in recorder.measurements() if m["quantity"] == "pm2_5"], 90), \
        daemon.log.read_text()[-3000:]
    assert wait_until(lambda: camera_values(recorder, "source_up"), 30)
    assert daemon.stop() == 0
    check_payloads(recorder)
    assert all(m["value"] == 0 for m in camera_values(recorder, "frames"))
    assert camera_values(recorder, "occupancy_mean") == [], "no data is not zero people"
    assert all(m["value"] == 0 for m in camera_values(recorder, "source_up"))
    assert all(m["value"] == 1 for m in camera_values(recorder, "up"))
    assert all(m["value"] == 0 for m in camera_values(recorder, "restarts_total"))
    assert "cannot be opened" in daemon.log.read_text()
