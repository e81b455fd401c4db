"""Sensor.Community: rows become pushes as airrohr sends them; answers mean what the server means.

The sink runs for real against the strict local server (sensor_community_server.py,
which reproduces feinstaub-api's push endpoint) and a real outbox with two sinks.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.config import parse_config
from agent.config.sinks import SensorCommunityConfig, sensor_community_channels
from agent.models import Measurement, OutboxRecord, Quality, Stats
from agent.publish import sensor_community as sc
from agent.publish.community_sink import SINK, SensorCommunitySink
from agent.storage import Outbox
from tests.mqtt_broker import wait_until
from tests.publish.sensor_community_server import SensorCommunityServer

NODE = "raspi-10000000a3b2c1d0"
T0 = 1_780_000_000_000  # 2026-05-28T20:26:40Z
CONFIG = f"""
device_id = "box"
[sensors.pm]
model = "sds011"
port = "/dev/ttyUSB0"
[sensors.climate]
model = "bme280"
bus = 1
[sinks.sensor_community]
node_id = "{NODE}"
sensors = ["pm", "climate"]
"""
CHANNELS = sensor_community_channels(parse_config(CONFIG, "t.toml").sinks.sensor_community,
                                     parse_config(CONFIG, "t.toml").resolved_sensors())


def m(sensor: str, quantity: str, value: float, unit: str, utc_ms: int = T0, *,
      flags: frozenset[Quality] = frozenset()) -> Measurement:
    return Measurement(sensor, quantity, value, unit, utc_ms, 0.0, flags,
                       Stats(value, value, 3, 60.0))


def window(utc_ms: int = T0, pm: float = 12.345) -> list[Measurement]:
    """One minute of the box: a PM window, a climate window, health in between."""
    return [m("pm", "pm2_5", pm, "ug/m3", utc_ms), m("pm", "pm10", 20.0, "ug/m3", utc_ms),
            m("pm", "pm2_5_rh_corrected", 11.0, "ug/m3", utc_ms),
            Measurement("agent", "uptime", 5.0, "s", utc_ms, 0.0),
            m("climate", "temperature", 21.5, "Cel", utc_ms),
            m("climate", "relative_humidity", 48.25, "%", utc_ms),
            m("climate", "pressure", 1013.25, "hPa", utc_ms)]


def records(measurements: list[Measurement]) -> list[OutboxRecord]:
    return [OutboxRecord(i + 1, "b" * 32, i + 1, x) for i, x in enumerate(measurements)]


# -- rows → pushes (pure) -----------------------------------------------------------------

def test_a_window_is_one_push_per_sensor_with_strings_pa_and_its_own_time() -> None:
    plan = sc.plan(records(window()), CHANNELS, full=False)
    assert [(p.pin, p.values) for p in plan.requests] == [
        (1, (("P2", "12.35"), ("P1", "20.00"))),
        (11, (("temperature", "21.50"), ("humidity", "48.25"), ("pressure", "101325.00")))]
    assert plan.skip == [3, 4], "corrected PM and health values are not Sensor.Community's"
    document = json.loads(sc.body(plan.requests[1], "lokaalmeten-1"))
    assert document == {"software_version": "lokaalmeten-1",
                        "timestamp": "2026-05-28T20:26:40.000Z",
                        "sensordatavalues": [
                            {"value_type": "temperature", "value": "21.50"},
                            {"value_type": "humidity", "value": "48.25"},
                            {"value_type": "pressure", "value": "101325.00"}]}
    assert sc.headers(NODE, plan.requests[0], "ua") == {
        "Content-Type": "application/json", "X-Sensor": NODE, "X-Pin": "1", "User-Agent": "ua"}


def test_warming_up_windows_are_skipped_and_a_repeated_value_type_starts_a_new_push() -> None:
    warm = frozenset({Quality.WARMING_UP})
    rows = records([m("pm", "pm2_5", 5.0, "ug/m3", flags=warm),
                    m("pm", "pm10", 6.0, "ug/m3", flags=warm),
                    m("pm", "pm2_5", 7.0, "ug/m3", T0 + 1), m("pm", "pm2_5", 8.0, "ug/m3", T0 + 1)])
    plan = sc.plan(rows, CHANNELS, full=False)
    assert plan.skip == [1, 2]
    assert [p.values for p in plan.requests] == [(("P2", "7.00"),), (("P2", "8.00"),)]
    assert all(len({t for t, _ in p.values}) == len(p.values) for p in plan.requests)


def test_a_window_cut_by_the_batch_limit_waits_for_the_next_batch() -> None:
    rows = records(window(T0) + window(T0 + 60_000))[:-1]  # the last climate row is missing
    plan = sc.plan(rows, CHANNELS, full=True)
    assert [p.utc_ms for p in plan.requests] == [T0, T0, T0 + 60_000]
    assert plan.last_row_id == 11, "the incomplete climate window (rows 12, 13) waits"
    assert sc.plan(rows, CHANNELS, full=False).last_row_id == 13


@pytest.mark.parametrize(("status", "meaning"), [
    (200, sc.Verdict.DELIVERED), (201, sc.Verdict.DELIVERED), (400, sc.Verdict.REJECTED),
    (403, sc.Verdict.REFUSED), (404, sc.Verdict.REFUSED), (415, sc.Verdict.REFUSED),
    (429, sc.Verdict.RETRY), (500, sc.Verdict.RETRY), (503, sc.Verdict.RETRY)])
def test_each_answer_means_what_the_server_means(status: int, meaning: sc.Verdict) -> None:
    assert sc.verdict(status) is meaning


# -- the local server behaves as feinstaub-api ---------------------------------------------

@pytest.fixture
def server() -> Iterator[SensorCommunityServer]:
    instance = SensorCommunityServer(nodes={NODE: {"1", "11"}}).start()
    yield instance
    instance.stop()


def post(server: SensorCommunityServer, document: object, **headers: str) -> tuple[int, object]:
    request = urllib.request.Request(server.url, json.dumps(document).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, json.loads(body) if exc.headers["Content-Type"] == \
            "application/json" else body


def test_the_local_server_answers_as_feinstaub_api(server: SensorCommunityServer) -> None:
    values = {"sensordatavalues": [{"value_type": "P1", "value": 10}]}
    status, document = post(server, {**values, "timestamp": "2026-05-28T20:26:40.000Z"},
                             **{"X-Sensor": NODE, "X-Pin": "1"})
    assert status == 201
    assert document["sensordatavalues"][0]["value"] == "10", "values are stored as strings"
    assert server.values(NODE, "1") == [(datetime(2026, 5, 28, 20, 26, 40, tzinfo=UTC),
                                         {"P1": "10"})], "the client's timestamp is kept"
    assert post(server, values, **{"X-Sensor": "esp8266-1", "X-Pin": "1"}) == (
        403, {"detail": "Node not found in database."})
    assert post(server, values, **{"X-Pin": "1"})[0] == 403, "no X-Sensor"
    assert post(server, {"sensordatavalues": [{"value_type": "PM25", "value": "1"}]},
                **{"X-Sensor": NODE, "X-Pin": "1"}) == (
        400, {"sensordatavalues": [{"value_type": ['"PM25" is not a valid choice.']}]})
    assert post(server, {"sensordatavalues": []}, **{"X-Sensor": NODE}) == (
        400, ["sensordatavalues was empty. Nothing to save."])
    assert post(server, values, **{"X-Sensor": NODE, "X-Pin": "7"}) == (
        400, ["sensor could not be selected."])
    twice = {"sensordatavalues": [{"value_type": "P1", "value": "1"},
                                  {"value_type": "P1", "value": "2"}]}
    assert post(server, twice, **{"X-Sensor": NODE, "X-Pin": "1"})[0] == 500
    assert len(server.stored) == 1


# -- the sink against the server, on a real outbox --------------------------------------------

def open_outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "o.sqlite", "b" * 32, max_rows=10**6, max_age_days=30,
                  sinks=("mqtt", SINK))


def start_sink(outbox: Outbox, server: SensorCommunityServer, **overrides: object
               ) -> SensorCommunitySink:
    config = SensorCommunityConfig.model_validate({
        "sensors": ["pm", "climate"], "node_id": NODE, "url": server.url,
        "retry_min_s": 0.05, "retry_max_s": 0.2, "refused_retry_s": 0.3,
        "pause_between_pushes_s": 0, "timeout_s": 5, **overrides})
    sink = SensorCommunitySink(outbox, config, NODE, CHANNELS, "lokaalmeten-test")
    sink.start()
    return sink


def stop(sink: SensorCommunitySink) -> None:
    sink.stop()
    assert sink.join(10)


def test_a_backlog_arrives_with_original_times_and_only_this_sink_advances(
        tmp_path: Path, server: SensorCommunityServer) -> None:
    outbox = open_outbox(tmp_path)
    for minute in range(5):
        outbox.add(window(T0 + minute * 60_000, pm=float(minute)))
    outbox.commit()
    sink = start_sink(outbox, server)
    try:
        assert wait_until(lambda: len(server.stored) == 10, 10)
        outbox.commit()
    finally:
        stop(sink)
    pm = server.values(NODE, "1")
    assert [value["P2"] for _, value in pm] == ["0.00", "1.00", "2.00", "3.00", "4.00"]
    assert [t for t, _ in pm] == [datetime.fromtimestamp((T0 + k * 60_000) / 1000, UTC)
                                  for k in range(5)]
    assert outbox.sink_figures(SINK).backlog == 0
    assert outbox.sink_figures("mqtt").backlog == 35, "nothing deleted before MQTT has it"
    stats = sink.stats()
    assert (stats.pushes, stats.delivered, stats.skipped, stats.errors_total) == (10, 25, 10, 0)


def test_an_unknown_node_keeps_the_data_is_said_once_and_recovers_when_registered(
        tmp_path: Path, server: SensorCommunityServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    server.nodes = {}
    outbox = open_outbox(tmp_path)
    outbox.add(window())
    outbox.commit()
    sink = start_sink(outbox, server)
    try:
        assert wait_until(lambda: server.answers.count(403) >= 3, 10)
        assert sink.stats().refused
        outbox.commit()
        assert outbox.sink_figures(SINK).backlog == 5, "refused: every row it pushes is kept"
        server.nodes = {NODE: {"1", "11"}}
        assert wait_until(lambda: len(server.stored) == 2, 10)
    finally:
        stop(sink)
    refusals = [r for r in caplog.records if "refuses node" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.ERROR
    assert "devices.sensor.community" in refusals[0].getMessage()
    assert not sink.stats().refused and "accepts node" in caplog.text


def test_a_push_the_server_can_never_take_is_skipped_and_counted_not_retried(
        tmp_path: Path, server: SensorCommunityServer, caplog: pytest.LogCaptureFixture) -> None:
    server.nodes = {NODE: {"1", "3"}}  # the climate sensor (pin 11) is not registered
    outbox = open_outbox(tmp_path)
    for minute in range(3):
        outbox.add(window(T0 + minute * 60_000))
    outbox.commit()
    sink = start_sink(outbox, server)
    try:
        assert wait_until(lambda: len(server.values(NODE, "1")) == 3, 10)
        assert wait_until(lambda: sink.stats().rejected == 9, 10)
        outbox.commit()
    finally:
        stop(sink)
    assert server.answers.count(400) == 3, "each rejected push was tried once"
    assert outbox.sink_figures(SINK).backlog == 0
    assert sum("rejected the push" in r.getMessage() and r.levelno == logging.ERROR
               for r in caplog.records) == 1, "one ERROR per reason"


def test_server_errors_and_a_dead_server_are_retried_without_loss_or_disorder(
        tmp_path: Path, server: SensorCommunityServer) -> None:
    outbox = open_outbox(tmp_path)
    for minute in range(4):
        outbox.add(window(T0 + minute * 60_000, pm=float(minute)))
    outbox.commit()
    server.force = [500, 503, 502]
    server.down = True
    sink = start_sink(outbox, server)
    try:
        assert wait_until(lambda: sink.stats().errors_total >= 3, 10)
        assert server.stored == []
        server.down = False
        assert wait_until(lambda: len(server.stored) == 8, 15)
    finally:
        stop(sink)
    assert [v["P2"] for _, v in server.values(NODE, "1")] == ["0.00", "1.00", "2.00", "3.00"]
    assert server.answers.count(201) == 8, "each push stored once"
