"""The daemon posting to a real SensorThings server beside a real Mosquitto, and the
``sensorthings provision`` command as a person runs it.

``lokaalmeten simulate`` (the real daemon on emulated sensors) publishes to MQTT and
posts to a django-ogc-sensorthings server the test starts; its API reads back what was
stored, compared window by window with what MQTT carried. The server stopped mid-run
and started again on the same database: nothing is lost.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.integration.fast_box import AIR, ROOT, SimulatedBox, fast_head
from tests.mqtt_broker import Broker, Recorder, wait_until
from tests.sensorthings.server import StaServer, sta_python

pytestmark = pytest.mark.slow
LOCATION = """
[location]
latitude = 52.0907
longitude = 5.1214
name = "{name}"
"""


def config(url: str, place: str | None = "Oudegracht 231") -> str:
    location = "" if place is None else LOCATION.format(name=place)
    return fast_head("sta-box", 2) + location + AIR + f"""
[sinks.sensorthings]
url = "{url}"
retry_min_s = 0.2
retry_max_s = 1.0
refused_retry_s = 1.0
"""


def agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True,
                          text=True, check=False, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StaServer]:
    instance = StaServer(sta_python(), tmp_path)
    instance.start()
    yield instance
    instance.stop()


def test_provision_twice_then_after_a_move(tmp_path: Path, server: StaServer) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(config(server.url))
    first = agent("sensorthings", "provision", "--config", str(path))
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines and all(line.startswith("created") for line in lines), first.stdout
    assert len(server.all("Datastreams")) == 5  # sds011: pm2_5, pm10; bme280: 3
    again = agent("sensorthings", "provision", "--config", str(path))
    assert again.returncode == 0 and {line.split()[0] for line in again.stdout.splitlines()} \
        == {"unchanged"}, again.stdout
    path.write_text(config(server.url, "Neude"))
    moved = agent("sensorthings", "provision", "--config", str(path))
    assert [line.split()[1].split("(")[0] for line in moved.stdout.splitlines()
            if line.startswith("updated")] == ["Locations", "Things"], moved.stdout
    assert len(server.all("Things")) == 1 and len(server.all("Locations")) == 1
    print("\n" + first.stdout)


def test_check_config_refuses_a_sensorthings_sink_without_a_location(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(config("http://127.0.0.1:1/v1.1", place=None))
    done = agent("check-config", "--config", str(path))
    assert done.returncode == 2
    assert "sinks.sensorthings" in done.stderr and "[location]" in done.stderr, done.stderr
    refused = agent("sensorthings", "provision", "--config", str(path))
    assert refused.returncode == 2


Window = tuple[float, float, tuple[str, ...]]
"""(value, window length s, flags)."""


def mqtt_windows(recorder: Recorder, sensor: str, quantity: str) -> dict[int, list[Window]]:
    """What MQTT carried: window end (ms, to the second, as this server keeps times: its
    validator normalises every time to whole seconds) → the windows ending in that second
    (two when a worker stops just after a window: its partial window ends in the same
    second)."""
    out: dict[int, list[Window]] = {}
    for m in recorder.measurements():
        if (m["sensor"], m["quantity"]) == (sensor, quantity):
            out.setdefault(m["time_ms"] // 1000 * 1000, []).append(
                (m["value"], m["window_s"], tuple(sorted(m.get("flags", [])))))
    return out


def same_window(stored: Window, carried: Window) -> bool:
    """One window as the server keeps it and as MQTT carried it: the span to within the
    second the server truncates both ends to."""
    return (abs(stored[0] - carried[0]) <= 1e-6 * max(1.0, abs(carried[0]))
            and abs(stored[1] - carried[1]) < 1.0 and stored[2] == carried[2])


def ms(text: str) -> int:
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def stored(server: StaServer, key: str) -> dict[int, Window]:
    """What the server holds of one Datastream: window end → (value, span s, flags)."""
    found = server.all("Datastreams", **{"$filter": f"properties/lokaalmeten_id eq '{key}'"})
    if not found:
        return {}
    out = {}
    for o in server.all(found[0]["Observations@iot.navigationLink"]):
        start, end = (ms(t) for t in o["phenomenonTime"].split("/"))
        assert ms(o["resultTime"]) == end
        flags = tuple((o.get("resultQuality") or {}).get("flags", []))
        out[end] = (o["result"], (end - start) / 1000, flags)
    return out


def test_every_window_reaches_the_server_as_mqtt_carried_it_even_across_an_outage(
        tmp_path: Path, broker: Broker, recorder: Recorder, server: StaServer) -> None:
    box = SimulatedBox(tmp_path, broker, config(server.url))
    box.start()
    pm = "sta-box/pm/sds011/pm2_5"
    try:
        assert wait_until(lambda: len(stored(server, pm)) >= 3, 60), box.log.read_text()
        server.stop()
        before = len(mqtt_windows(recorder, "pm", "pm2_5"))
        assert wait_until(lambda: len(mqtt_windows(recorder, "pm", "pm2_5")) >= before + 3,
                          30), "MQTT goes on while the server is away"
        server.start()
        after = len(mqtt_windows(recorder, "pm", "pm2_5"))
        assert wait_until(lambda: len(stored(server, pm)) >= after + 1, 60), \
            box.log.read_text()
        assert box.signal() == 0
    finally:
        box.close()
    for sensor, key in (("pm", pm), ("pm", "sta-box/pm/sds011/pm10"),
                        ("climate", "sta-box/climate/bme280/pressure")):
        quantity = key.rsplit("/", 1)[1]
        mqtt, sta = mqtt_windows(recorder, sensor, quantity), stored(server, key)
        last = max(sta)
        missing = {t for t in mqtt if t <= last} - set(sta)
        assert not missing, f"{quantity}: windows MQTT has and the server lacks: {missing}"
        assert set(sta) <= set(mqtt), "same window ends"
        differ = {t: (sta[t], mqtt[t]) for t in sta
                  if not any(same_window(sta[t], carried) for carried in mqtt[t])}
        assert not differ, f"{quantity}: server vs MQTT {differ}"
    assert any("warming_up" in flags for _, _, flags in stored(server, pm).values())
    print(f"\n{len(stored(server, pm))} PM2.5 windows on the SensorThings server, "
          f"{len(mqtt_windows(recorder, 'pm', 'pm2_5'))} on MQTT")
