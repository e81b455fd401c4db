"""The SensorThings sink: the entities and Observations it builds (pure), and the sink
and provisioning against a real SensorThings API server (django-ogc-sensorthings,
installed by ``scripts/ensure-sta-venv``, started on a free port by the fixture)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from agent.config import parse_config
from agent.config.location import LocationConfig
from agent.config.sensorthings import SensorThingsConfig
from agent.models import Measurement, OutboxRecord, Quality, Stats
from agent.publish import sensorthings as sta
from agent.publish.delivery import Answer, Verdict
from agent.publish.sensorthings_client import Action, Server, provision
from agent.publish.sensorthings_sink import SINK, SensorThingsSink
from agent.storage import Outbox
from tests.mqtt_broker import wait_until
from tests.sensorthings.server import StaServer, sta_python

T0 = 1_780_000_000_000  # 2026-05-28T20:26:40Z
CONFIG = """
device_id = "box-1"
[sensors.pm]
model = "sds011"
port = "/dev/ttyUSB0"
[sensors.climate]
model = "bme280"
bus = 1
"""
SENSORS = parse_config(CONFIG, "t.toml").resolved_sensors()
PLACE = LocationConfig(latitude=52.0907, longitude=5.1214, altitude_m=5.0,
                       name="Oudegracht 231")
QUANTITIES = {s.sensor_id: [q.name for q in s.profile.quantities] for s in SENSORS}


def settings(url: str = "http://127.0.0.1:1", **overrides: object) -> SensorThingsConfig:
    return SensorThingsConfig.model_validate({
        "url": url, "retry_min_s": 0.05, "retry_max_s": 0.2, "refused_retry_s": 0.3,
        "timeout_s": 10, **overrides})


def make_catalog(config: SensorThingsConfig, location: LocationConfig | None = PLACE,
                 version: str = "1.0") -> sta.Catalog:
    return sta.catalog(config, "box-1", SENSORS, location, agent_version=version,
                       box_serial="10000000abcdef")


def m(sensor: str, quantity: str, value: float, unit: str, utc_ms: int = T0, *,
      flags: frozenset[Quality] = frozenset(), stats: bool = True) -> Measurement:
    return Measurement(sensor, quantity, value, unit, utc_ms, 0.0, flags,
                       Stats(value - 1, value + 1, 3, 60.0) if stats else None)


def window(utc_ms: int = T0, pm: float = 12.345) -> list[Measurement]:
    """A PM window, health in between, a flagged climate window."""
    return [m("pm", "pm2_5", pm, "ug/m3", utc_ms), m("pm", "pm10", 20.0, "ug/m3", utc_ms),
            Measurement("agent", "uptime", 5.0, "s", utc_ms, 0.0),
            m("pm", "errors_total", 0.0, "1", utc_ms, stats=False),
            m("climate", "temperature", 21.5, "Cel", utc_ms,
              flags=frozenset({Quality.WARMING_UP, Quality.RETRIED})),
            m("climate", "pressure", 1013.25, "hPa", utc_ms)]


def records(measurements: list[Measurement]) -> list[OutboxRecord]:
    return [OutboxRecord(i + 1, "b" * 32, i, x) for i, x in enumerate(measurements)]


# -- pure -----------------------------------------------------------------------------------

def test_the_catalog_is_a_thing_its_location_and_a_datastream_per_quantity() -> None:
    found = make_catalog(settings())
    kinds = Counter(e.collection for e in found.entities)
    quantities = {q for qs in QUANTITIES.values() for q in qs}
    assert kinds == {"Locations": 1, "Things": 1, "Sensors": 2,
                     "ObservedProperties": len(quantities),
                     "Datastreams": sum(len(q) for q in QUANTITIES.values())}
    keys = [e.key for e in found.entities]
    assert len(keys) == len(set(keys)), "every entity has its own key"
    made: set[str] = set()
    for entity in found.entities:  # a link always points at an entity made before it
        assert all(key in made for _, key in entity.links), entity.key
        made.add(entity.key)
    location = next(e for e in found.entities if e.collection == "Locations")
    assert location.fields["location"] == {"type": "Point", "coordinates": [5.1214, 52.0907, 5.0]}
    stream = next(e for e in found.entities if e.key == "box-1/pm/sds011/pm2_5")
    assert stream.fields["unitOfMeasurement"] == {
        "name": "microgram per cubic metre", "symbol": "ug/m3",
        "definition": "http://www.opengis.net/def/uom/UCUM/0/ug%2Fm3"}
    assert dict(stream.links) == {"Thing": "box-1", "Sensor": "sensor-model/sds011",
                                  "ObservedProperty": "quantity/pm2_5"}
    assert all(e.fields["properties"][sta.KEY] == e.key for e in found.entities)  # type: ignore[index]


def test_a_window_is_an_observation_over_its_interval_with_its_stats_and_flags() -> None:
    work = sta.plan(records(window()), make_catalog(settings()))
    assert work.skip == [3, 4], "health is not sent"
    assert [p.datastream for p in work.requests] == [
        "box-1/pm/sds011/pm2_5", "box-1/pm/sds011/pm10", "box-1/climate/bme280/temperature",
        "box-1/climate/bme280/pressure"]
    pm, _, temperature, _ = work.requests
    assert pm.body == {"phenomenonTime": "2026-05-28T20:25:40Z/2026-05-28T20:26:40Z",
                       "resultTime": "2026-05-28T20:26:40Z", "result": 12.345,
                       "parameters": {"boot_id": "b" * 32, "seq": 0, "window_s": 60.0,
                                      "n": 3, "min": 11.345, "max": 13.345}}
    assert temperature.body["resultQuality"] == {"flags": ["retried", "warming_up"]}
    assert work.last_row_id == 6


def test_a_sensor_not_chosen_and_a_value_that_is_no_number_are_skipped() -> None:
    chosen = make_catalog(settings(sensors=["climate"]))
    rows = records([*window(), m("climate", "pressure", float("nan"), "hPa")])
    work = sta.plan(rows, chosen)
    assert [p.datastream.split("/")[1] for p in work.requests] == ["climate", "climate"]
    assert work.skip == [1, 2, 3, 4, 7]


def test_instants_and_milliseconds() -> None:
    instant = dataclasses.replace(window()[0], stats=None, utc_ms=T0 + 5)
    body = sta.observation(OutboxRecord(1, "b", 0, instant))
    assert body["phenomenonTime"] == body["resultTime"] == "2026-05-28T20:26:40.005Z"
    assert "window_s" not in body["parameters"]  # type: ignore[operator]


@pytest.mark.parametrize(("status", "meaning"), [
    (201, Verdict.DELIVERED), (400, Verdict.REJECTED), (401, Verdict.REFUSED),
    (404, Verdict.REFUSED), (500, Verdict.RETRY), (429, Verdict.RETRY)])
def test_each_answer_means_what_a_sensorthings_server_means(status: int, meaning: Verdict
                                                            ) -> None:
    assert sta.sta_verdict(Answer(status, "")) is meaning


def test_ids_as_numbers_and_as_strings_and_the_key_filter() -> None:
    assert sta.entity_url("http://s/v1.1", "Things", 7) == "http://s/v1.1/Things(7)"
    assert sta.entity_url("http://s/v1.1", "Things", "a'b") == "http://s/v1.1/Things('a%27%27b')"
    assert sta.find_url("http://s/v1.1", "Things", "o'k") == (
        "http://s/v1.1/Things?%24filter=properties%2Flokaalmeten_id%20eq%20%27o%27%27k%27"
        "&%24top=2")


def test_check_config_wants_a_location_and_known_sensors() -> None:
    problems = settings(sensors=["pm", "nope"]).problems(
        parse_config(CONFIG, "t.toml").sensors, None)
    assert [key for key, _ in problems] == ["sinks.sensorthings.sensors[1]",
                                            "sinks.sensorthings"]


# -- against a real SensorThings server ------------------------------------------------------

@pytest.fixture(scope="module")
def python() -> Path:
    return sta_python()


@pytest.fixture
def server(python: Path, tmp_path: Path) -> Iterator[StaServer]:
    instance = StaServer(python, tmp_path)
    instance.start()
    yield instance
    instance.stop()


def counts(server: StaServer) -> dict[str, int]:
    return {c: len(server.all(c)) for c in ("Things", "Locations", "Sensors",
                                            "ObservedProperties", "Datastreams")}


@pytest.mark.slow  # a real SensorThings server
def test_provisioning_twice_creates_nothing_twice_and_updates_what_changed(
        server: StaServer) -> None:
    client = Server(server.url, user_agent="test", timeout_s=10)
    first = provision(client, make_catalog(settings(server.url)))
    assert {a for _, a in first.actions} == {Action.CREATED}
    before = counts(server)
    assert before == Counter(e.collection for e in make_catalog(settings()).entities)
    again = provision(client, make_catalog(settings(server.url)))
    assert {a for _, a in again.actions} == {Action.UNCHANGED}
    assert again.ids == first.ids
    # someone else's property on the Thing survives; a moved box and a new version update
    thing = sta.entity_url("", "Things", first.ids["box-1"]).lstrip("/")
    assert server.send("PATCH", thing, {"properties": {
        sta.KEY: "box-1", "agent_version": "1.0", "serial": "10000000abcdef",
        "owner": "gemeente"}}) in (200, 204)
    moved = PLACE.model_copy(update={"latitude": 52.1, "name": "Neude"})
    third = provision(client, make_catalog(settings(server.url), moved, version="1.1"))
    changed = {e.key for e, a in third.actions if a is Action.UPDATED}
    assert changed == {"location/box-1", "box-1"}
    assert [e.collection for e, a in third.actions if a is Action.UPDATED] == [
        "Locations", "Things"]
    assert counts(server) == before
    stored = server.get(thing, **{"$expand": "Locations"})
    assert stored["properties"] == {sta.KEY: "box-1", "agent_version": "1.1",
                                    "serial": "10000000abcdef", "owner": "gemeente"}
    assert stored["description"] == "Lokaal Meten sensor box at Neude"
    assert stored["Locations"][0]["location"]["coordinates"] == [5.1214, 52.1, 5.0]
    streams = server.all("Datastreams")
    assert {d["unitOfMeasurement"]["symbol"] for d in streams} == {"ug/m3", "Cel", "%", "hPa"}


def open_outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "o.sqlite", "b" * 32, max_rows=10**6, max_age_days=30,
                  sinks=("mqtt", SINK))


def drained(outbox: Outbox) -> bool:
    outbox.commit()
    return outbox.sink_figures(SINK).backlog == 0


def observations(server: StaServer, key: str) -> list[dict]:
    (stream,) = server.all("Datastreams", **{"$filter": f"properties/{sta.KEY} eq '{key}'"})
    return sorted(server.all(stream["Observations@iot.navigationLink"]),
                  key=lambda o: o["resultTime"])


@pytest.mark.slow  # a real SensorThings server
def test_a_backlog_is_provisioned_then_posted_and_reads_back_window_by_window(
        tmp_path: Path, server: StaServer) -> None:
    outbox = open_outbox(tmp_path)
    for minute in range(5):
        outbox.add(window(T0 + minute * 60_000, pm=minute + 0.25))
    outbox.commit()
    config = settings(server.url)
    sink = SensorThingsSink(outbox, config, make_catalog(config), "lokaalmeten-test")
    sink.start()
    try:
        assert wait_until(lambda: drained(outbox), 60), sink.stats()
    finally:
        sink.stop()
        sink.join(15)
    assert (sink.stats().delivered, sink.stats().skipped, sink.stats().errors_total) == \
        (20, 10, 0)
    assert outbox.sink_figures("mqtt").backlog == 30, "nothing deleted before MQTT has it"
    pm = observations(server, "box-1/pm/sds011/pm2_5")
    assert [(o["result"], interval(o["phenomenonTime"]), ms(o["resultTime"])) for o in pm] == [
        (k + 0.25, (T0 + k * 60_000 - 60_000, T0 + k * 60_000), T0 + k * 60_000)
        for k in range(5)]
    assert pm[0]["parameters"] == {"boot_id": "b" * 32, "seq": 1, "window_s": 60.0, "n": 3,
                                   "min": -0.75, "max": 1.25}
    assert "resultQuality" not in pm[0] or pm[0]["resultQuality"] is None
    temperature = observations(server, "box-1/climate/bme280/temperature")
    assert {tuple(o["resultQuality"]["flags"]) for o in temperature} == {
        ("retried", "warming_up")}
    foi = server.get(pm[0]["@iot.selfLink"], **{"$expand": "FeatureOfInterest"})
    assert foi["FeatureOfInterest"]["feature"]["coordinates"] == [5.1214, 52.0907, 5.0]


def ms(text: str) -> int:
    """A time as the server writes it (``+00:00`` or ``Z``), in epoch ms."""
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def interval(text: str) -> tuple[int, int]:
    start, end = text.split("/")
    return ms(start), ms(end)


@pytest.mark.slow  # a real SensorThings server
def test_a_server_away_keeps_everything_until_it_is_back(tmp_path: Path, python: Path
                                                         ) -> None:
    outbox = open_outbox(tmp_path)
    outbox.add(window())
    outbox.commit()
    server = StaServer(python, tmp_path)
    config = settings(server.url)
    sink = SensorThingsSink(outbox, config, make_catalog(config), "lokaalmeten-test")
    sink.start()
    try:
        assert wait_until(lambda: sink.stats().errors_total >= 2, 20)
        assert outbox.sink_figures(SINK).backlog == 4, "kept while nobody answers"
        server.start()
        assert wait_until(lambda: drained(outbox), 60), sink.stats()
        assert len(observations(server, "box-1/climate/bme280/pressure")) == 1
    finally:
        sink.stop()
        sink.join(15)
        server.stop()
