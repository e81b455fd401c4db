"""The daemon writing to a real InfluxDB (Debian's influxd 1.6) beside a real Mosquitto.

``lokaalmeten simulate`` (the real daemon on emulated sensors) publishes to MQTT and
writes to an ``influxd`` the test starts; InfluxQL over HTTP reads back what was
stored and it is compared, window by window, with what MQTT carried. influxd killed
with SIGKILL mid-run and started again on the same data: nothing is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.influxd import InfluxServer
from tests.integration.fast_box import AIR, SimulatedBox, fast_head
from tests.mqtt_broker import Broker, Recorder, wait_until

DB = "lokaalmeten"
pytestmark = pytest.mark.slow


def config(url: str) -> str:
    return fast_head("influx-box", 2) + AIR + f"""
[sinks.influxdb]
url = "{url}"
database = "{DB}"
tags = {{site = "Utrecht, Noord = 3"}}
retry_min_s = 0.2
retry_max_s = 1.0
refused_retry_s = 1.0
pause_between_pushes_s = 0
"""


@pytest.fixture
def influx(tmp_path: Path) -> Iterator[InfluxServer]:
    (tmp_path / "influx").mkdir()
    server = InfluxServer(tmp_path / "influx").start()
    server.query(f"CREATE DATABASE {DB}")
    yield server
    server.stop()


@pytest.fixture
def box(tmp_path: Path, broker: Broker, influx: InfluxServer) -> Iterator[SimulatedBox]:
    agent = SimulatedBox(tmp_path, broker, config(influx.url))
    yield agent
    agent.close()


def mqtt_windows(recorder: Recorder, sensor: str, quantity: str
                 ) -> dict[int, tuple[float, tuple[str, ...]]]:
    """What MQTT carried of one quantity: window end (ms) → (value, flags)."""
    return {m["time_ms"]: (m["value"], tuple(sorted(m.get("flags", []))))
            for m in recorder.measurements()
            if (m["sensor"], m["quantity"]) == (sensor, quantity)}


def stored(influx: InfluxServer, measurement: str, field: str
           ) -> dict[int, tuple[float, tuple[str, ...]]]:
    rows = influx.rows(f'SELECT "{field}", "{field}_flags", site, device FROM "{measurement}"',
                       DB)
    assert all(r["site"] == "Utrecht, Noord = 3" and r["device"] == "influx-box" for r in rows)
    return {r["time"]: (r[field], tuple(f for f in r[f"{field}_flags"].split(",") if f))
            for r in rows}


def test_every_window_reaches_influxdb_as_mqtt_carried_it_even_across_an_outage(
        box: SimulatedBox, influx: InfluxServer, recorder: Recorder) -> None:
    box.start()
    assert wait_until(lambda: len(stored(influx, "sds011", "pm2_5")) >= 3, 60), \
        box.log.read_text()
    influx.kill()  # SIGKILL: whatever was in flight is answered never
    before = len(mqtt_windows(recorder, "pm", "pm2_5"))
    assert wait_until(lambda: len(mqtt_windows(recorder, "pm", "pm2_5")) >= before + 4, 30), \
        "MQTT goes on while InfluxDB is away"
    influx.start()
    after = len(mqtt_windows(recorder, "pm", "pm2_5"))
    assert wait_until(lambda: len(stored(influx, "sds011", "pm2_5")) >= after + 2, 40), \
        box.log.read_text()
    assert box.signal() == 0
    for sensor, measurement, quantity in (("pm", "sds011", "pm2_5"), ("pm", "sds011", "pm10"),
                                          ("climate", "bme280", "pressure")):
        mqtt, influxdb = mqtt_windows(recorder, sensor, quantity), \
            stored(influx, measurement, quantity)
        last = max(influxdb)
        missing = {t for t in mqtt if t <= last} - set(influxdb)
        assert not missing, f"{quantity}: windows MQTT has and InfluxDB lacks: {sorted(missing)}"
        assert set(influxdb) <= set(mqtt), "same window ends"
        # MQTT's JSON carries 7 significant digits; InfluxDB the float itself
        assert all(abs(influxdb[t][0] - mqtt[t][0]) <= 1e-6 * max(1.0, abs(mqtt[t][0]))
                   and influxdb[t][1] == mqtt[t][1] for t in influxdb), quantity
    assert any("warming_up" in flags for _, flags in stored(influx, "sds011", "pm2_5").values())
    health = influx.rows("SHOW MEASUREMENTS", DB)
    assert {r["name"] for r in health} == {"sds011", "bme280"}, "no health unless asked"
    print(f"\n{len(stored(influx, 'sds011', 'pm2_5'))} PM windows in InfluxDB, "
          f"{len(mqtt_windows(recorder, 'pm', 'pm2_5'))} on MQTT")
