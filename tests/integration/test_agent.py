"""The whole daemon as a process: emulated SDS011 → sampler → outbox → real Mosquitto.

Runs ``python -m agent simulate`` exactly as a user would, then checks values,
units, seq continuity, status/Last Will, graceful stop, broker outages and
kill -9 at random moments.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from tests.integration.fast_box import fast_head
from tests.mqtt_broker import Broker, Recorder, wait_until

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "payload.schema.json").read_text())

pytestmark = pytest.mark.slow

CONFIG = fast_head("it-box", 3) + """[sensors.pm]
model = "sds011"
port = "/dev/ttyUSB0"
interval_s = 1
window_s = 2
warmup_s = 0
"""


class AgentProcess:
    def __init__(self, tmp_path: Path, broker: Broker) -> None:
        self.config = tmp_path / "agent.toml"
        self.config.write_text(CONFIG)
        self.state = tmp_path / "state"
        self.log = tmp_path / "agent.log"
        self.broker = broker
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def db(self) -> Path:
        return self.state / "outbox.sqlite"

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent", "simulate", "--config", str(self.config),
                 "--broker", f"{self.broker.host}:{self.broker.port}",
                 "--state-dir", str(self.state)], stdout=log, stderr=log, env=env)

    def signal(self, signum: int) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        code = self.process.wait(15)
        self.process = None
        return code

    def rows(self) -> set[tuple[str, int]]:
        with sqlite3.connect(self.db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            return set(conn.execute("SELECT boot_id, seq FROM outbox"))


@pytest.fixture
def agent(tmp_path: Path, broker: Broker) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path, broker)
    yield process
    if process.process is not None:
        process.process.kill()
        process.process.wait()


def pm(recorder: Recorder) -> list[dict]:
    return [m for m in recorder.measurements() if m["quantity"] == "pm2_5"]


def boots(recorder: Recorder) -> int:
    return len({m["boot_id"] for m in recorder.measurements()})


def assert_seq_complete(recorder: Recorder) -> dict[str, list[int]]:
    """Per boot: unique seqs form 1..max, first seen in ascending order."""
    by_boot: dict[str, list[int]] = {}
    for m in recorder.measurements():
        by_boot.setdefault(m["boot_id"], []).append(m["seq"])
    for boot, seqs in by_boot.items():
        unique = list(dict.fromkeys(seqs))
        assert unique == list(range(1, len(unique) + 1)), f"boot {boot}: gaps or disorder"
    return by_boot


def test_measurements_arrive_and_graceful_stop_drains(agent: AgentProcess,
                                                      recorder: Recorder) -> None:
    agent.start()
    assert wait_until(lambda: len(pm(recorder)) >= 3, 30), agent.log.read_text()
    assert agent.signal(signal.SIGTERM) == 0
    for message in recorder.on("/measurements") + recorder.on("/health"):
        jsonschema.validate(json.loads(message.payload), SCHEMA)
    values = pm(recorder)
    assert all(m["unit"] == "ug/m3" and 0 < m["value"] < 1000 and m["sensor"] == "pm"
               for m in values)
    assert all(m["n"] >= 1 and m["min"] <= m["value"] <= m["max"] for m in values)
    quantities = {m["quantity"] for m in recorder.measurements()}
    assert {"pm2_5", "pm10", "uptime", "outbox_depth", "errors_total"} <= quantities
    topics = {m["topic"]: {x["quantity"] for x in recorder.measurements()
                           if x["topic"] == m["topic"]} for m in recorder.measurements()}
    assert {"pm2_5", "pm10"} == topics["measurements"], "measured values alone"
    assert {"uptime", "outbox_depth", "errors_total"} <= topics["health"]
    assert_seq_complete(recorder)
    assert wait_until(lambda: [m.payload for m in recorder.on("/it-box/status")][-1:]
                      == [b"offline"], 5), "a clean stop says offline"
    assert recorder.on("/it-box/status")[0].payload == b"online"
    assert agent.rows() == set(), "a graceful stop drains the outbox"


def test_broker_outage_every_measurement_arrives_in_order(agent: AgentProcess, broker: Broker,
                                                          recorder: Recorder) -> None:
    agent.start()
    assert wait_until(lambda: len(pm(recorder)) >= 2, 30), agent.log.read_text()
    broker.stop()
    time.sleep(5)  # sampling continues into the outbox
    backlog = len(agent.rows())
    assert backlog > 0
    restarted = time.monotonic()
    broker.start()
    assert wait_until(lambda: not agent.rows(), 30)
    drain_s = time.monotonic() - restarted
    print(f"\noutage backlog of {backlog} measurements drained {drain_s:.2f} s after the "
          "broker came back (includes reconnect backoff)")
    assert agent.signal(signal.SIGTERM) == 0
    by_boot = assert_seq_complete(recorder)
    assert len(by_boot) == 1
    seqs = next(iter(by_boot.values()))
    duplicates = len(seqs) - len(set(seqs))
    assert duplicates <= 200, "duplicates only for messages whose PUBACK was lost"


def test_kill_9_at_random_moments_loses_nothing_committed(agent: AgentProcess,
                                                          recorder: Recorder) -> None:
    rng = random.Random(20261127)
    committed: set[tuple[str, int]] = set()
    for run in range(1, 4):
        agent.start()
        assert wait_until(lambda run=run: boots(recorder) == run, 30), agent.log.read_text()
        time.sleep(rng.uniform(0.5, 3.0))
        offline_before = len([m for m in recorder.on("/status") if m.payload == b"offline"])
        assert agent.signal(signal.SIGKILL) == -signal.SIGKILL
        assert wait_until(lambda before=offline_before: len(
            [m for m in recorder.on("/status") if m.payload == b"offline"]) > before, 15), \
            "the broker publishes the Last Will when the agent dies"
        committed |= agent.rows()  # committed but not yet acknowledged by the broker
    agent.start()
    assert wait_until(lambda: boots(recorder) == 4, 30)
    assert wait_until(lambda: not agent.rows(), 30)
    assert agent.signal(signal.SIGTERM) == 0
    received = {(m["boot_id"], m["seq"]) for m in recorder.measurements()}
    assert committed <= received, "every committed measurement was delivered after restarts"
    assert len({boot for boot, _ in received}) == 4
