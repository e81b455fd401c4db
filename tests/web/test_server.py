"""The status page's server: read-only, same-origin only, Host-checked, token-guarded."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from agent.config.health import HealthConfig
from agent.config.status import StatusConfig
from agent.models import Measurement, Stats
from agent.status.service import StatusService
from agent.web.server import MAX_CLIENTS, STATIC
from tests.mqtt_broker import free_port, wait_until
from tests.status.boxes import sensor
from tests.web.site import Box, get, service

TOKEN = "3f9a1c0e7b5d4e2f8a6c1b0d9e7f5a3c"


@pytest.fixture
def box() -> Box:
    return Box()


@pytest.fixture
def site(tmp_path: Path, box: Box) -> Iterator[StatusService]:
    running = service(tmp_path, box)
    running.start()
    yield running
    running.stop()


def port_of(site: StatusService) -> int:
    return site._config.port


def test_page_and_assets_with_strict_headers(site: StatusService) -> None:
    for path, kind in (("/", "text/html"), ("/app.js", "text/javascript"),
                       ("/style.css", "text/css")):
        status, headers, body = get(port_of(site), path)
        assert status == 200 and headers["content-type"].startswith(kind) and body
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["cache-control"] == "no-store"
        assert not any(h.startswith("access-control-") for h in headers)
        assert headers["server"] == "lokaalmeten"


def test_assets_name_nothing_outside_the_box() -> None:
    for asset in STATIC.iterdir():
        urls = re.findall(r"[a-z]+://[^\s\"'`)]+", asset.read_text())
        assert set(urls) <= {"http://www.w3.org/2000/svg"}, (asset.name, urls)
        assert not re.search(r"\.innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(",
                             asset.read_text())


def test_status_and_history_json(site: StatusService, box: Box) -> None:
    now = time.time_ns() // 1_000_000
    site.observe([Measurement("pm", "pm2_5", 12.5, "ug/m3", now, 1.0,
                              stats=Stats(11.0, 14.0, 5, 60.0)),
                  Measurement("square", "line_door_in", 4.0, "{person}", now, 1.0)])
    status, headers, body = get(port_of(site), "/api/status")
    doc = json.loads(body)
    assert status == 200 and headers["content-type"] == "application/json"
    assert doc["device_id"] == "box-1" and doc["ok"] is True
    assert doc["sensors"][0]["values"][0]["display_unit"] == "µg/m³"
    assert doc["cameras"][0]["values"][0]["quantity"] == "line_door_in"
    status, _, body = get(port_of(site), "/api/history?sensor=pm&quantity=pm2_5&hours=24")
    history = json.loads(body)
    assert status == 200 and history["display_unit"] == "µg/m³" and history["rule"] == "mean"
    assert [(p["value"], p["low"], p["high"], p["n"]) for p in history["points"]] == \
        [(12.5, 11.0, 14.0, 1)]
    status, _, body = get(port_of(site), "/api/history?sensor=square&quantity=line_door_in")
    assert status == 200 and json.loads(body)["rule"] == "sum"
    box.facts = replace(box.facts, sensors=(sensor(state="failing", up=False),))
    assert json.loads(get(port_of(site), "/api/status")[2])["ok"] is False


@pytest.mark.parametrize(("path", "code"), [
    ("/api/history?sensor=pm", 400), ("/api/history?sensor=pm&quantity=pm2_5&hours=900", 400),
    ("/api/history?sensor=pm&quantity=pm2_5&hours=x", 400),
    ("/api/history?sensor=pm&quantity=co2", 404), ("/etc/passwd", 404),
    ("/../agent/web/server.py", 404), ("/static/../server.py", 404),
])
def test_bad_requests(site: StatusService, path: str, code: int) -> None:
    assert get(port_of(site), path)[0] == code


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_read_only(site: StatusService, method: str) -> None:
    status, headers, _ = get(port_of(site), "/api/status", method=method,
                             headers={"Origin": "http://evil.example"})
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert "access-control-allow-origin" not in headers


def test_head_has_no_body(site: StatusService) -> None:
    status, headers, body = get(port_of(site), "/", method="HEAD")
    assert status == 200 and int(headers["content-length"]) > 0 and body == b""


@pytest.mark.parametrize(("host", "code"), [
    ("evil.example", 421), ("evil.example:8470", 421), ("localhost:8470", 200),
    ("127.0.0.1:8470", 200), ("[::1]:8470", 200), ("box.wijk.example", 200),
    (socket.gethostname(), 200),
])
def test_host_header_guards_against_dns_rebinding(tmp_path: Path, box: Box, host: str,
                                                  code: int) -> None:
    running = service(tmp_path, box, allowed_hosts=["box.wijk.example"])
    running.start()
    try:
        assert get(running._config.port, "/api/status", headers={"Host": host})[0] == code
    finally:
        running.stop()


def test_token_on_a_lan_bind(tmp_path: Path, box: Box) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    running = service(tmp_path, box, bind="0.0.0.0", token_file=str(token_file))
    running.start()
    port = running._config.port
    try:
        status, headers, _ = get(port, "/")
        assert status == 401 and headers["www-authenticate"].startswith("Basic realm=")
        for wrong in ("Bearer " + TOKEN[:-1] + "0", "Basic " + base64.b64encode(
                b"admin:guess").decode(), "Digest " + TOKEN, "Bearer", "Basic !!!"):
            assert get(port, "/api/status", {"Authorization": wrong})[0] == 401
        basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
        assert get(port, "/", {"Authorization": f"Basic {basic}"})[0] == 200
        assert get(port, "/api/status", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    finally:
        running.stop()


def test_a_port_in_use_costs_the_page_not_the_agent(site: StatusService, tmp_path: Path,
                                                    box: Box,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    second = service(tmp_path / "other", box, port=port_of(site))
    second.start()  # logs, does not raise
    second.observe([Measurement("pm", "pm2_5", 1.0, "ug/m3", 0, 0.0)])
    second.stop()
    assert any("status page not started" in r.message and r.levelname == "ERROR"
               for r in caplog.records)
    assert get(port_of(site), "/api/status")[0] == 200


def test_idle_connections_cannot_pile_up_threads(site: StatusService) -> None:
    port = port_of(site)
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_CLIENTS)]
    try:
        assert wait_until(lambda: _refused(port), 5), "a client beyond the bound is refused"
    finally:
        for sock in idle:
            sock.close()
    assert wait_until(lambda: not _refused(port), 10)


def _refused(port: int) -> bool:
    try:
        return get(port, "/api/status")[0] != 200
    except (http.client.HTTPException, ConnectionError):
        return True


def test_a_token_file_gone_since_the_check_costs_only_the_page(
        tmp_path: Path, box: Box, caplog: pytest.LogCaptureFixture) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    config = StatusConfig(bind="0.0.0.0", port=free_port(), token_file=token_file)
    token_file.unlink()
    running = StatusService(config, HealthConfig(), tmp_path, box, {}, cameras=[],
                            wall_ms=lambda: 0, monotonic=time.monotonic)
    running.start()
    running.tick(time.monotonic())
    running.stop()
    assert any("status page not started: cannot read" in r.message for r in caplog.records)
    with pytest.raises(ConnectionRefusedError):
        get(config.port, "/")
