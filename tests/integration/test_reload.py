"""``systemctl reload``: SIGHUP to the daemon process, against real Mosquitto brokers.

The agent runs as ``python -m agent simulate`` (real drivers on emulators, real MQTT);
the test rewrites its config file and sends SIGHUP, as ``ExecReload`` does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.fast_box import fast_head
from tests.integration.test_agent import ROOT, AgentProcess, assert_seq_complete
from tests.mqtt_broker import Broker, Recorder, free_port, wait_until

pytestmark = pytest.mark.slow

PM = """[sensors.pm]
model = "sds011"
port = "/dev/ttyUSB0"
interval_s = 1
window_s = 2
warmup_s = 0
"""
CLIMATE = """[sensors.climate]
model = "bme280"
bus = 1
interval_s = 1
window_s = 2
"""


class ReloadingAgent(AgentProcess):
    """The daemon with a status page on a free port, and a config that can be rewritten."""

    def __init__(self, tmp_path: Path, broker: Broker) -> None:
        super().__init__(tmp_path, broker)
        self.page_port = free_port()
        self.write()

    def write(self, sensors: str = PM, device_id: str = "reload-box",
              broker: Broker | None = None, storage: str = "") -> None:
        """The broker is in the file (no --broker), so a reload can change it."""
        broker = broker or self.broker
        head = fast_head(device_id, 3).replace(
            "[mqtt]\n", f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n').replace(
            "[storage]\n", f'[storage]\npath = "{self.db}"\n{storage}')
        self.config.write_text(f"{head}[status]\nport = {self.page_port}\n{sensors}")

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent", "simulate", "--config", str(self.config)],
                stdout=log, stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT)})

    def reload(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)

    def logged(self, text: str) -> bool:
        return text in self.log.read_text()

    def page(self) -> dict:
        url = f"http://127.0.0.1:{self.page_port}/api/status"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())


@pytest.fixture
def agent(tmp_path: Path, broker: Broker) -> Iterator[ReloadingAgent]:
    process = ReloadingAgent(tmp_path, broker)
    yield process
    if process.process is not None:
        process.process.kill()
        process.process.wait()


def values(recorder: Recorder, quantity: str) -> list[dict]:
    return [m for m in recorder.measurements() if m["quantity"] == quantity]


def born_with(recorder: Recorder) -> set[str] | None:
    """The sensors of the newest birth message received, or None before the first."""
    births = recorder.on("/reload-box/birth")
    return {s["id"] for s in json.loads(births[-1].payload)["sensors"]} if births else None


def more(recorder: Recorder, quantity: str, than: int) -> bool:
    return len(values(recorder, quantity)) > than


def test_a_sensor_added_by_reload_reports_and_nothing_is_lost(
        agent: ReloadingAgent, recorder: Recorder) -> None:
    # A one-minute PM window: what the reload interrupts exists only in memory.
    long_pm = PM.replace("window_s = 2", "window_s = 60")
    agent.write(long_pm)
    agent.start()
    assert wait_until(lambda: len(values(recorder, "uptime")) >= 2, 30), agent.log.read_text()
    assert values(recorder, "pm2_5") == []
    assert wait_until(lambda: born_with(recorder) == {"pm"}, 15), "the birth message"
    agent.write(long_pm + CLIMATE)
    agent.reload()
    assert wait_until(lambda: agent.logged("reload: restarting sensors, status page"), 15), \
        agent.log.read_text()
    assert wait_until(lambda: len(values(recorder, "pm2_5")) == 1, 15), \
        "the PM window the reload cut short is published, not dropped"
    assert values(recorder, "pm2_5")[0]["n"] >= 2
    assert wait_until(lambda: len(values(recorder, "temperature")) >= 2, 30), \
        agent.log.read_text()
    assert wait_until(lambda: {s["id"] for s in agent.page()["sensors"]} == {"pm", "climate"},
                      15), "the status page came back on its port and knows the new sensor"
    assert born_with(recorder) == {"pm", "climate"}, "the reload sent a new birth message"
    newest = json.loads(recorder.on("/reload-box/birth")[-1].payload)
    assert {s["id"]: set(s["identity"]) for s in newest["sensors"]}["pm"] >= \
        {"firmware", "device_id"}, "the SDS011 told its firmware and id when opened"
    late = Recorder(recorder.broker, client_id="late-subscriber").start()
    try:
        assert wait_until(lambda: late.on("/reload-box/birth"), 10)
        retained = late.on("/reload-box/birth")[-1]
        assert retained.retain and born_with(late) == {"pm", "climate"}
    finally:
        late.stop()
    assert agent.signal(signal.SIGTERM) == 0
    by_boot = assert_seq_complete(recorder)
    assert len(by_boot) == 1, "a reload is no restart: one boot id, seq goes on"
    assert {m["sensor"] for m in values(recorder, "temperature")} == {"climate"}
    assert len(values(recorder, "pm2_5")) == 2, "and the stop publishes the second window"


def test_invalid_or_unappliable_config_is_refused_and_sampling_goes_on(
        agent: ReloadingAgent, recorder: Recorder) -> None:
    agent.start()
    assert wait_until(lambda: len(values(recorder, "pm2_5")) >= 2, 30), agent.log.read_text()
    agent.write(PM.replace("interval_s = 1", "interval_s = -1") + 'colour = "red"\n')
    agent.reload()
    assert wait_until(lambda: agent.logged("reload refused"), 15), agent.log.read_text()
    log = agent.log.read_text()
    assert f"{agent.config}: sensors.pm.interval_s: Input should be greater than 0" in log
    assert f"{agent.config}: sensors.pm.colour: unknown key" in log
    pm_now = len(values(recorder, "pm2_5"))
    assert wait_until(lambda: more(recorder, "pm2_5", pm_now + 2), 30), "still sampling"

    agent.write(device_id="another-box", storage="max_rows = 500\n")
    agent.reload()
    assert wait_until(lambda: agent.logged("device_id: changed from 'reload-box'"), 15), \
        agent.log.read_text()
    assert agent.logged("storage.max_rows: changed")
    pm_now = len(values(recorder, "pm2_5"))
    assert wait_until(lambda: more(recorder, "pm2_5", pm_now + 2), 30)
    assert agent.signal(signal.SIGTERM) == 0
    assert {m["device_id"] for m in recorder.measurements()} == {"reload-box"}
    assert len(assert_seq_complete(recorder)) == 1


def test_a_new_broker_gets_the_rest_in_sequence(agent: ReloadingAgent, recorder: Recorder,
                                                tmp_path: Path) -> None:
    (tmp_path / "second-broker").mkdir()
    second = Broker(tmp_path / "second-broker")
    second.start()
    other = Recorder(second, client_id="second-recorder").start()
    try:
        agent.start()
        assert wait_until(lambda: len(values(recorder, "pm2_5")) >= 3, 30), \
            agent.log.read_text()
        agent.write(broker=second)
        agent.reload()
        assert wait_until(lambda: len(values(other, "pm2_5")) >= 3, 30), agent.log.read_text()
        assert agent.logged("reload: restarting broker")
        assert agent.signal(signal.SIGTERM) == 0
    finally:
        other.stop()
        second.stop()
    first_seqs = {m["seq"] for m in recorder.measurements()}
    second_seqs = {m["seq"] for m in other.measurements()}
    assert {m["boot_id"] for m in recorder.measurements() + other.measurements()} == \
        {recorder.measurements()[0]["boot_id"]}
    assert first_seqs | second_seqs == set(range(1, max(second_seqs) + 1)), \
        "every measurement reached one broker or the other, in one numbering"
    assert min(second_seqs) > min(first_seqs)


def test_on_a_terminal_sighup_is_a_hangup_and_the_agent_stops(
        agent: ReloadingAgent, recorder: Recorder) -> None:
    """``lokaalmeten simulate`` in a terminal that is closed must not live on unseen."""
    controller, terminal = os.openpty()
    try:
        agent.process = subprocess.Popen(
            [sys.executable, "-m", "agent", "simulate", "--config", str(agent.config)],
            stdout=terminal, stderr=terminal, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert wait_until(lambda: len(values(recorder, "uptime")) >= 1, 30)
        assert agent.signal(signal.SIGHUP) == 0, "a clean stop, not a reload"
        screen = os.read(controller, 65536).decode(errors="replace")
        assert "received SIGHUP; shutting down" in screen and "reload:" not in screen
    finally:
        os.close(controller)
        os.close(terminal)
