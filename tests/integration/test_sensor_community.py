"""The daemon feeding two sinks at once: a real Mosquitto and the strict Sensor.Community server.

``lokaalmeten simulate`` (the real daemon on emulated sensors: an SDS011 on pin 1,
a BME280 on pin 11, the microphone meter on pin 15) pushes to the local server of
tests/publish/sensor_community_server.py while it publishes to MQTT. Either
receiver may be away for a while: the other goes on, nothing is deleted before
both have it, and nothing is lost; nor when the agent is killed mid-push.
"""

from __future__ import annotations

import random
import signal
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.fast_box import AIR, SimulatedBox, fast_head
from tests.mqtt_broker import Broker, Recorder, wait_until
from tests.publish.sensor_community_server import SensorCommunityServer

NODE = "raspi-00000000c0ffee42"
pytestmark = pytest.mark.slow


def config(url: str) -> str:
    return fast_head("sc-box", 2) + AIR + f"""
[sensors.noise]
model = "microphone"
device = "default"
interval_s = 2
window_s = 2
[sinks.sensor_community]
node_id = "{NODE}"
sensors = ["pm", "climate", "noise"]
url = "{url}"
retry_min_s = 0.2
retry_max_s = 1.0
refused_retry_s = 1.0
pause_between_pushes_s = 0
"""


class Box(SimulatedBox):
    """The agent as a process, and what its outbox still holds."""

    def rows(self) -> int:
        with sqlite3.connect(self.state / "outbox.sqlite") as conn:
            return conn.execute("SELECT count(*) FROM outbox").fetchone()[0]

    def kept_for(self, sink: str) -> int:
        """Rows the other sink has delivered (at or below its committed position) that are
        still stored because ``sink`` does not have them."""
        with sqlite3.connect(self.state / "outbox.sqlite") as conn:
            positions = dict(conn.execute("SELECT sink, position FROM sink_positions"))
            other = max(v for k, v in positions.items() if k != sink)
            return conn.execute("SELECT count(*) FROM outbox WHERE id > ? AND id <= ?",
                                (positions.get(sink, 0), other)).fetchone()[0]


@pytest.fixture
def server() -> Iterator[SensorCommunityServer]:
    instance = SensorCommunityServer(nodes={NODE: {"1", "11", "15"}}).start()
    yield instance
    instance.stop()


@pytest.fixture
def box(tmp_path: Path, broker: Broker, server: SensorCommunityServer) -> Iterator[Box]:
    agent = Box(tmp_path, broker, config(server.url))
    yield agent
    agent.close()


def windows(recorder: Recorder, sensor: str, quantity: str, *, warm: bool = False
            ) -> dict[datetime, float]:
    """What MQTT received of one quantity, by window time: settled ones, or warm-up ones."""
    return {datetime.fromtimestamp(m["time_ms"] / 1000, UTC): m["value"]
            for m in recorder.measurements()
            if (m["sensor"], m["quantity"]) == (sensor, quantity)
            and ("warming_up" in m.get("flags", [])) == warm}


def pushed(server: SensorCommunityServer, pin: str, value_type: str) -> dict[datetime, float]:
    return {t: float(v[value_type]) for t, v in server.values(NODE, pin)}


def test_every_window_reaches_both_sinks_as_each_platform_wants_it(
        box: Box, recorder: Recorder, server: SensorCommunityServer) -> None:
    box.start()
    assert wait_until(lambda: len(server.values(NODE, "15")) >= 3
                      and len(server.values(NODE, "1")) >= 3, 60), box.log.read_text()
    assert wait_until(lambda: any(m["quantity"] == "sensor_community_backlog"
                                  for m in recorder.measurements()), 10)
    assert box.signal(signal.SIGTERM) == 0
    pm_mqtt, pm_sc = windows(recorder, "pm", "pm2_5"), pushed(server, "1", "P2")
    assert set(pm_sc) <= set(pm_mqtt), "only settled windows, at their own times"
    assert all(abs(pm_sc[t] - pm_mqtt[t]) <= 0.005 for t in pm_sc)
    assert windows(recorder, "pm", "pm2_5", warm=True), "the warm-up went to MQTT"
    assert not set(windows(recorder, "pm", "pm2_5", warm=True)) & set(pm_sc), \
        "but not to Sensor.Community"
    pressure = pushed(server, "11", "pressure")
    hpa = windows(recorder, "climate", "pressure")
    # hPa ×100; MQTT carries 7 significant digits (0.05 Pa here), Sensor.Community two decimals
    assert pressure and all(abs(pressure[t] - 100 * hpa[t]) <= 0.06 for t in pressure), "Pa"
    noise = server.values(NODE, "15")
    assert {"noise_LAeq", "noise_LA_min", "noise_LA_max"} == set(noise[0][1])
    assert all(len(values) == len(set(values)) for _, values in server.values(NODE, "1"))
    assert {s.software_version for s in server.stored} == {s.software_version
                                                           for s in server.stored[:1]}
    assert server.answers.count(201) == len(server.stored), "no push refused"


def test_one_receiver_away_holds_back_nothing_and_loses_nothing(
        box: Box, broker: Broker, recorder: Recorder, server: SensorCommunityServer) -> None:
    box.start()
    assert wait_until(lambda: len(server.values(NODE, "1")) >= 2, 60), box.log.read_text()
    broker.stop()  # MQTT away: Sensor.Community goes on, the outbox keeps what MQTT lacks
    before = len(server.values(NODE, "1"))
    assert wait_until(lambda: len(server.values(NODE, "1")) >= before + 3, 30)
    assert wait_until(lambda: box.kept_for("mqtt") > 20, 10), \
        "rows Sensor.Community has are kept while MQTT lacks them"
    broker.start()
    server.down = True  # now Sensor.Community away: MQTT goes on
    mqtt_before = len(windows(recorder, "pm", "pm2_5"))
    assert wait_until(lambda: len(windows(recorder, "pm", "pm2_5")) >= mqtt_before + 3, 40)
    assert wait_until(lambda: box.kept_for("sensor_community") > 10, 10), \
        "rows MQTT has are kept while Sensor.Community lacks them"
    sc_before = len(server.stored)
    server.down = False
    assert wait_until(lambda: len(server.stored) >= sc_before + 6, 40)
    assert box.signal(signal.SIGTERM) == 0
    settled = windows(recorder, "pm", "pm2_5")
    pm_sc = pushed(server, "1", "P2")
    last = max(pm_sc)
    assert {t for t in settled if t <= last} <= set(pm_sc), \
        "every settled window up to the last push reached Sensor.Community"
    by_boot: dict[str, set[int]] = {}
    for m in recorder.measurements():
        by_boot.setdefault(m["boot_id"], set()).add(m["seq"])
    (seqs,) = by_boot.values()
    assert seqs == set(range(1, max(seqs) + 1)), "MQTT got every measurement"


def test_kill_9_mid_push_loses_nothing_committed(
        box: Box, recorder: Recorder, server: SensorCommunityServer) -> None:
    rng = random.Random(20261204)
    box.start()
    assert wait_until(lambda: len(server.values(NODE, "1")) >= 2, 60), box.log.read_text()
    for _ in range(2):
        server.stall_s = 1.0  # requests hang a second: the agent dies with one in flight
        assert wait_until(lambda: server.received > len(server.answers), 10)
        wait_until(lambda: False, rng.uniform(0.0, 0.5))
        in_flight = server.received > len(server.answers)
        assert box.signal(signal.SIGKILL) == -signal.SIGKILL
        assert in_flight, "killed while a push was in flight"
        server.stall_s = 0.0
        box.start()
    assert wait_until(lambda: len(server.values(NODE, "1")) >= 8, 60), box.log.read_text()
    assert box.signal(signal.SIGTERM) == 0
    pm_sc = pushed(server, "1", "P2")
    settled = windows(recorder, "pm", "pm2_5")
    last = max(pm_sc)
    missing = {t for t in settled if t <= last} - set(pm_sc)
    assert not missing, f"windows never pushed: {sorted(missing)}"
    times = [t for t, _ in server.values(NODE, "1")]
    print(f"\n{len(times)} PM pushes stored, {len(times) - len(set(times))} of them again "
          "after a kill -9 (at-least-once)")
