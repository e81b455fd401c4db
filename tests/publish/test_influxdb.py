"""InfluxDB: windows become points, and a real InfluxDB (Debian's ``influxdb`` 1.6) stores
them as they were measured, odd names included; its answers mean what it means.

Every sink test runs the real sink thread on a real outbox against ``influxd``
started by the test (tests/influxd.py) and reads back with InfluxQL over HTTP.
"""

from __future__ import annotations

import logging
import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import parse_config
from agent.config.influxdb import InfluxDBConfig
from agent.health.heartbeat import CAMERA_HEALTH
from agent.models import Measurement, OutboxRecord, Quality, Stats
from agent.publish import influxdb as influx
from agent.publish.delivery import Answer, Verdict
from agent.publish.influx_sink import SINK, InfluxDBSink
from agent.publish.line_protocol import line
from agent.storage import Outbox
from agent.vision.process import CounterSupervisor
from tests.influxd import InfluxServer
from tests.mqtt_broker import wait_until

T0 = 1_780_000_000_000  # 2026-05-28T20:26:40Z
DB = "lokaalmeten"
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
SOURCES = influx.sources(SENSORS, ["door"])


def settings(url: str = "http://127.0.0.1:1", **overrides: object) -> InfluxDBConfig:
    return InfluxDBConfig.model_validate({
        "url": url, "database": DB, "retry_min_s": 0.05, "retry_max_s": 0.2,
        "refused_retry_s": 0.3, "pause_between_pushes_s": 0, "timeout_s": 5, **overrides})


def layout(config: InfluxDBConfig) -> influx.Layout:
    return influx.Layout(config, "box-1", SOURCES)


def m(sensor: str, quantity: str, value: float, unit: str, utc_ms: int = T0, *,
      flags: frozenset[Quality] = frozenset(), stats: bool = True) -> Measurement:
    return Measurement(sensor, quantity, value, unit, utc_ms, 0.0, flags,
                       Stats(value - 1, value + 1, 3, 60.0) if stats else None)


def window(utc_ms: int = T0, pm: float = 12.345) -> list[Measurement]:
    """One minute of the box: a PM window, health in between, a climate window, a count."""
    return [m("pm", "pm2_5", pm, "ug/m3", utc_ms), m("pm", "pm10", 20.0, "ug/m3", utc_ms),
            Measurement("agent", "uptime", 5.0, "s", utc_ms, 0.0),
            m("pm", "errors_total", 0.0, "1", utc_ms, stats=False),
            m("climate", "temperature", 21.5, "Cel", utc_ms, flags=frozenset(
                {Quality.WARMING_UP, Quality.RETRIED})),
            m("climate", "pressure", 1013.25, "hPa", utc_ms),
            m("door", "line_a_in", 4.0, "{person}", utc_ms, stats=False),
            m("door", "up", 1.0, "1", utc_ms, stats=False)]


def records(measurements: list[Measurement]) -> list[OutboxRecord]:
    return [OutboxRecord(i + 1, "b" * 32, i, x) for i, x in enumerate(measurements)]


# -- pure: the line protocol and the points -------------------------------------------------

def test_line_protocol_escapes_what_each_part_needs() -> None:
    text = line("m,x y", [("t=k 1", "v,a=b c")], [("f 1", 'q"uo\\te'), ("n", 3), ("b", True),
                                                   ("g", 0.1)], 17)
    assert text == 'm\\,x\\ y,t\\=k\\ 1=v\\,a\\=b\\ c f\\ 1="q\\"uo\\\\te",n=3i,b=true,g=0.1 17'
    for bad in ("a\nb", "ends\\", ""):
        with pytest.raises(ValueError):
            line("m", [("t", bad)], [("f", 1.0)], 0)
    with pytest.raises(ValueError):
        line("m", [], [("f", float("nan"))], 0)


def test_a_window_is_one_point_per_sensor_with_flags_stats_and_the_window_end() -> None:
    work = influx.plan(records(window()), layout(settings()))
    (batch,) = work.requests
    assert [p.text for p in batch.points] == [
        "sds011,device=box-1,model=sds011,sensor=pm pm2_5=12.345,pm2_5_min=11.345,"
        'pm2_5_max=13.345,pm2_5_n=3i,pm2_5_flags="",pm10=20.0,pm10_min=19.0,pm10_max=21.0,'
        'pm10_n=3i,pm10_flags="",window_s=60.0 1780000000000',
        "bme280,device=box-1,model=bme280,sensor=climate temperature=21.5,temperature_min=20.5,"
        'temperature_max=22.5,temperature_n=3i,temperature_flags="retried,warming_up",'
        'pressure=1013.25,pressure_min=1012.25,pressure_max=1014.25,pressure_n=3i,'
        'pressure_flags="",window_s=60.0 1780000000000',
        'camera,device=box-1,model=camera,sensor=door line_a_in=4.0,line_a_in_flags="" '
        "1780000000000"]
    assert batch.points[0].row_ids == (1, 2)
    assert work.skip == [3, 4, 8], "health is not written unless asked for"
    assert work.last_row_id == 8


def test_health_on_request_and_a_chosen_sensor_only() -> None:
    work = influx.plan(records(window()), layout(settings(health=True, sensors=["pm"],
                                                          precision="s")))
    texts = [p.text for b in work.requests for p in b.points]
    assert [t.split(" ")[0] for t in texts] == [
        "sds011,device=box-1,model=sds011,sensor=pm", "health,device=box-1,model=agent,"
        "sensor=agent", "health,device=box-1,model=sds011,sensor=pm",
        "health,device=box-1,model=camera,sensor=door"]
    assert all(t.endswith(" 1780000000") for t in texts), "precision s"
    assert work.skip == [5, 6, 7], "climate and the camera's count were not chosen"


def test_batches_are_cut_at_batch_lines_and_halve_down_to_one_point() -> None:
    rows = records([x for k in range(5) for x in window(T0 + k * 60_000)])
    work = influx.plan(rows, layout(settings(batch_lines=4)))
    assert [len(b.points) for b in work.requests] == [4, 4, 4, 3]
    first = work.requests[0]
    assert [len(h.points) for h in first.halves()] == [2, 2]
    assert first.halves()[0].halves()[1].halves() == []
    assert first.label == "4 point(s) at 2026-05-28T20:26:40Z to 2026-05-28T20:27:40Z"


def test_the_camera_health_names_are_those_the_supervisor_reports() -> None:
    """CAMERA_HEALTH must follow CounterSupervisor.health, or camera health turns into data."""
    camera = parse_config(CONFIG + '[cameras.door]\nsource = "0"\n', "t.toml").cameras["door"]
    names = {x.quantity for x in CounterSupervisor("door", camera).health(T0, 0.0)}
    assert names == CAMERA_HEALTH


@pytest.mark.parametrize(("status", "reason", "meaning"), [
    (204, "", Verdict.DELIVERED),
    (400, 'partial write: field type conflict: input field "h" ... dropped=1', Verdict.REJECTED),
    (400, "unable to parse 'x': invalid field format", Verdict.REJECTED),
    (400, "partial write: points beyond retention policy dropped=2", Verdict.REJECTED),
    (413, "", Verdict.REJECTED), (400, "invalid precision", Verdict.REFUSED),
    (401, "authorization failed", Verdict.REFUSED), (404, "database not found", Verdict.REFUSED),
    (429, "", Verdict.RETRY), (500, "timeout", Verdict.RETRY), (503, "", Verdict.RETRY)])
def test_each_answer_means_what_influxdb_means(status: int, reason: str, meaning: Verdict
                                               ) -> None:
    assert influx.influx_verdict(Answer(status, reason)) is meaning


def test_v1_and_v2_urls_and_credentials(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    v1 = settings("http://influx:8086/base/", username="agent", password_file=str(secret),
                  retention_policy="a year", precision="us")
    assert influx.write_url(v1) == \
        "http://influx:8086/base/write?db=lokaalmeten&rp=a+year&precision=u"
    assert influx.headers(v1, v1.secret(), "ua")["Authorization"] == "Basic YWdlbnQ6czNjcmV0"
    v2 = InfluxDBConfig.model_validate({"url": "https://influx", "api": "v2", "org": "gemeente",
                                        "bucket": "lucht", "token_file": str(secret)})
    assert influx.write_url(v2) == \
        "https://influx/api/v2/write?org=gemeente&bucket=lucht&precision=ms"
    assert influx.headers(v2, v2.secret(), "ua")["Authorization"] == "Token s3cret"


# -- the sink against a real influxd ---------------------------------------------------------

@pytest.fixture
def server(tmp_path: Path) -> Iterator[InfluxServer]:
    (tmp_path / "influx").mkdir()
    instance = InfluxServer(tmp_path / "influx").start()
    instance.query(f"CREATE DATABASE {DB}")
    yield instance
    instance.stop()


def open_outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "o.sqlite", "b" * 32, max_rows=10**6, max_age_days=30,
                  sinks=("mqtt", SINK))


def start_sink(outbox: Outbox, config: InfluxDBConfig) -> InfluxDBSink:
    sink = InfluxDBSink(outbox, layout(config), "lokaalmeten-test")
    sink.start()
    return sink


def stop(sink: InfluxDBSink) -> None:
    sink.stop()
    assert sink.join(10)


def stored(server: InfluxServer, query: str) -> list[dict[str, object]]:
    return server.rows(query, DB)


def write(server: InfluxServer, text: str) -> int:
    """One line written straight to the server, as the sink writes it."""
    request = urllib.request.Request(f"{server.url}/write?db={DB}&precision=ms",
                                     data=text.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def drained(outbox: Outbox) -> bool:
    """Every row is this sink's (its acknowledgements committed)."""
    outbox.commit()
    return outbox.sink_figures(SINK).backlog == 0


@pytest.mark.slow  # a real influxd
def test_odd_names_round_trip_through_a_real_influxdb(server: InfluxServer) -> None:
    """What the escaping must survive, written as the sink writes it, read back by InfluxQL."""
    odd = 'a, b=c "d" \\e'
    text = line("m, =x", [("t, =k", odd), ("plain", "ü ñ 中")],
                [("f, =1", odd), ("g", 1e16), ("h", 2.5e-7), ("n", 7)], T0)
    assert write(server, text) == 204
    (row,) = stored(server, 'SELECT * FROM "m, =x"')
    assert row == {"_measurement": "m, =x", "time": T0, "t, =k": odd, "plain": "ü ñ 中",
                   "f, =1": odd, "g": 1e16, "h": 2.5e-7, "n": 7}


@pytest.mark.slow  # a real influxd
def test_a_backlog_arrives_with_its_window_ends_and_only_this_sink_advances(
        tmp_path: Path, server: InfluxServer) -> None:
    outbox = open_outbox(tmp_path)
    for minute in range(5):
        outbox.add(window(T0 + minute * 60_000, pm=float(minute) + 0.25))
    outbox.commit()
    sink = start_sink(outbox, settings(server.url, tags={"site": "Utrecht, Noord = 3"}))
    try:
        assert wait_until(lambda: sink.stats().delivered == 25, 15)
        outbox.commit()
    finally:
        stop(sink)
    rows = stored(server, "SELECT pm2_5, pm2_5_n, pm2_5_flags, window_s, site FROM sds011")
    assert [(r["time"], r["pm2_5"], r["pm2_5_n"], r["pm2_5_flags"]) for r in rows] == [
        (T0 + k * 60_000, k + 0.25, 3, "") for k in range(5)]
    assert {r["site"] for r in rows} == {"Utrecht, Noord = 3"}
    clean = stored(server, "SELECT temperature FROM bme280 WHERE temperature_flags = ''")
    assert clean == [], "every climate window here is flagged warming up"
    assert outbox.sink_figures(SINK).backlog == 0
    assert outbox.sink_figures("mqtt").backlog == 40, "nothing deleted before MQTT has it"
    assert (sink.stats().skipped, sink.stats().errors_total) == (15, 0)


@pytest.mark.slow  # a real influxd
def test_points_influxdb_never_takes_are_set_aside_and_the_rest_is_stored(
        tmp_path: Path, server: InfluxServer) -> None:
    """A field type conflict: someone wrote sds011's pm10 as an integer, so InfluxDB 1.x
    refuses every float pm10 in that shard. Each batch halves down to the points it
    refuses, which go to the poison table; every other sensor's window is stored."""
    assert write(server, f"sds011,device=box-1,model=sds011,sensor=pm pm10=20i {T0 - 1}") == 204
    outbox = open_outbox(tmp_path)
    for minute in range(5):
        outbox.add(window(T0 + minute * 60_000, pm=float(minute)))
    outbox.commit()
    sink = start_sink(outbox, settings(server.url))
    try:
        assert wait_until(lambda: drained(outbox), 15)
    finally:
        stop(sink)
    assert stored(server, "SELECT pm2_5 FROM sds011") == [], "the refused points only"
    assert [r["temperature"] for r in stored(server, "SELECT temperature FROM bme280")] == \
        [21.5] * 5
    assert len(stored(server, "SELECT line_a_in FROM camera")) == 5
    assert (sink.stats().rejected, outbox.stats().poison_total) == (10, 10)
    with sqlite3.connect(tmp_path / "o.sqlite") as conn:
        reasons = [r for (r,) in conn.execute("SELECT reason FROM poison")]
    assert len(reasons) == 10 and all(
        r.startswith("influxdb: HTTP 400: ") and "field type conflict" in r for r in reasons)


@pytest.mark.slow  # a real influxd
def test_a_missing_database_or_wrong_password_keeps_everything_until_fixed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    (tmp_path / "influx").mkdir()
    server = InfluxServer(tmp_path / "influx", auth=True).start()
    try:
        server.query("CREATE USER admin WITH PASSWORD 'admin' WITH ALL PRIVILEGES")
        secret = tmp_path / "password"
        secret.write_text("wrong\n")
        secret.chmod(0o600)
        outbox = open_outbox(tmp_path)
        outbox.add(window())
        outbox.commit()
        sink = start_sink(outbox, settings(server.url, username="admin",
                                           password_file=str(secret)))
        try:
            assert wait_until(lambda: sink.stats().errors_total >= 2, 10)
            assert sink.stats().refused and "HTTP 401" in sink.stats().last_error
            secret.write_text("admin\n")  # right password: now the database is missing
            assert wait_until(lambda: "HTTP 404" in sink.stats().last_error, 10)
            server.query(f"CREATE DATABASE {DB}", auth=("admin", "admin"))
            assert wait_until(lambda: sink.stats().delivered == 5, 10)
        finally:
            stop(sink)
        refusals = [r for r in caplog.records if "InfluxDB refuses" in r.getMessage()]
        assert len(refusals) == 1 and refusals[0].levelno == logging.ERROR
        assert "password_file" in refusals[0].getMessage()
        assert "accepts writes to 'lokaalmeten' again" in caplog.text
        assert outbox.stats().poison_total == 0
    finally:
        server.stop()


@pytest.mark.slow  # a real influxd
def test_influxdb_killed_mid_drain_loses_nothing(tmp_path: Path, server: InfluxServer) -> None:
    """kill -9 of influxd while a backlog drains (a write in flight may be lost by the
    server or answered never): every window is there once it is back, in order."""
    outbox = open_outbox(tmp_path)
    for minute in range(300):
        outbox.add(window(T0 + minute * 60_000, pm=float(minute)))
    outbox.commit()
    sink = start_sink(outbox, settings(server.url, batch_lines=50, pause_between_pushes_s=0.1))
    try:
        assert wait_until(lambda: sink.stats().pushes >= 2, 15)
        server.kill()
        assert sink.stats().delivered < 1500, "killed mid-drain"
        assert wait_until(lambda: sink.stats().errors_total >= 2, 15)
        server.start()
        assert wait_until(lambda: drained(outbox), 60)
    finally:
        stop(sink)
    values = [r["pm2_5"] for r in stored(server, "SELECT pm2_5 FROM sds011")]
    assert values == [float(k) for k in range(300)], "every window once, in order"
