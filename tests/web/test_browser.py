"""The status page in a real headless Chromium, served by the real daemon.

``python -m agent simulate`` runs with emulated sensors against a Mosquitto on a free
port; Debian's ``chromium`` (never a browser downloaded by Playwright) opens the page.
Checked: real values with the units people read, plots drawn from the history, no
request leaves the box's origin, no console error (a CSP violation is one), the token
on a LAN bind, the periodic log summary, ``lokaalmeten status`` against the same
daemon. The screenshot is kept under ``tests/web/artifacts/`` (ignored by git).

Chromium and Playwright missing is a failure, not a skip: ``scripts/test`` installs both.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.status.history import BUCKET_MS, History
from tests.integration.fast_box import fast_head
from tests.mqtt_broker import Broker, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "5e1f0c3a9b7d4e6f8a2c0b1d3e5f7a9c"

pytestmark = pytest.mark.slow

SENSORS = """
[sensors.pm]
model = "sds011"
port = "/dev/ttyUSB0"
interval_s = 1
window_s = 2
warmup_s = 0
[sensors.climate]
model = "bme280"
bus = 1
interval_s = 1
window_s = 2
[sensors.noise]
model = "dnms"
bus = 1
interval_s = 1
window_s = 2
"""


def seed_history(state: Path) -> None:
    """A past day for two series, written through the history store itself, so the plots
    show a day's shape and a two-hour gap (the box was off) beside the live buckets."""
    now = time.time_ns() // 1_000_000
    store = History(state / "history.sqlite", 7, lambda: now)
    for step in range(24 * 12):
        at = now - (24 * 12 - step) * BUCKET_MS
        if 100 <= step < 124:
            continue
        phase = math.sin(2 * math.pi * step / (24 * 12))
        for sensor, quantity, unit, value in (("pm", "pm2_5", "ug/m3", 12 + 6 * phase),
                                              ("climate", "temperature", "Cel", 15 + 5 * phase)):
            store.add(sensor, quantity, unit, "mean", value=value, low=value - 1.5,
                      high=value + 2, utc_ms=at)
    store.close()


class Daemon:
    def __init__(self, tmp_path: Path, broker: Broker, status: str) -> None:
        self.port = free_port()
        self.config = tmp_path / "agent.toml"
        self.config.write_text(fast_head("web-box", 5) + "summary_interval_s = 2\n" + SENSORS
                               + f"[status]\nport = {self.port}\n{status}\n")
        self.log = tmp_path / "agent.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent", "simulate", "--config", str(self.config),
             "--broker", f"{broker.host}:{broker.port}", "--state-dir",
             str(tmp_path / "state")], stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.url = f"http://127.0.0.1:{self.port}"

    def status(self, token: str | None = None) -> dict | None:
        request = urllib.request.Request(self.url + "/api/status")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            return None

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(20)


def all_reported(doc: dict | None) -> bool:
    """Every sensor has values and a history bucket exists for them."""
    return doc is not None and all(s["values"] for s in doc["sensors"]) \
        and len(doc["sensors"]) == 3


@pytest.fixture
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415 - dev extra only
    except ImportError:
        pytest.fail("Playwright is missing: pip install -e '.[dev]' (scripts/test does)")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test does)")
    with sync_playwright() as playwright:
        # As root (CI), Chromium refuses its own sandbox; the page is ours and local.
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield instance
        instance.close()


def open_page(browser: object, url: str, **context: object) -> tuple[object, list[str],
                                                                      list[str], object]:
    ctx = browser.new_context(viewport={"width": 1200, "height": 900},  # type: ignore[attr-defined]
                              **context)
    page = ctx.new_page()
    requests: list[str] = []
    console: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"error: {e}"))
    response = page.goto(url + "/")
    return page, requests, console, response


def test_page_shows_real_values_units_and_plots(tmp_path: Path, broker: Broker,
                                                browser: object) -> None:
    seed_history(tmp_path / "state")
    daemon = Daemon(tmp_path, broker, "")
    try:
        assert wait_until(lambda: all_reported(daemon.status()), 60), daemon.log.read_text()
        page, requests, console, response = open_page(browser, daemon.url)
        assert response.status == 200  # type: ignore[attr-defined]
        page.wait_for_selector("body[data-plots]", timeout=30_000)  # type: ignore[attr-defined]

        def cell(sensor: str, quantity: str) -> object:
            return page.locator(  # type: ignore[attr-defined]
                f'article.sensor[data-id="{sensor}"] tr.value[data-quantity="{quantity}"] '
                "td.num").first

        for sensor, quantity, unit, low, high in (
                ("pm", "pm2_5", "µg/m³", 0, 1000), ("pm", "pm10", "µg/m³", 0, 1000),
                ("climate", "temperature", "°C", -40, 85),
                ("climate", "relative_humidity", "%", 0, 100),
                ("climate", "pressure", "hPa", 300, 1100), ("noise", "laeq", "dB(A)", 20, 130)):
            shown = cell(sensor, quantity)
            assert shown.locator(".unit").inner_text() == unit  # type: ignore[attr-defined]
            text = shown.inner_text()  # type: ignore[attr-defined]
            assert low < float(text.removesuffix(unit).strip()) < high, (sensor, quantity, text)
        assert page.locator("#device").inner_text() == "web-box"  # type: ignore[attr-defined]
        assert page.locator("#verdict").inner_text() == "All well"  # type: ignore[attr-defined]
        assert "connected" in page.locator(  # type: ignore[attr-defined]
            "#box .broker dd").inner_text()
        plots = page.locator("svg.plot")  # type: ignore[attr-defined]
        assert plots.count() >= 8
        drawn = page.locator("svg.plot polyline.line")  # type: ignore[attr-defined]
        assert drawn.count() >= 8, "a line per quantity with data"
        points = [int(plots.nth(i).get_attribute("data-points")) for i in range(plots.count())]
        assert all(n >= 1 for n in points), points
        for quantity in ("pm2_5", "temperature"):
            seeded = page.locator(  # type: ignore[attr-defined]
                f'figure.plot[data-quantity="{quantity}"] svg.plot')
            assert int(seeded.get_attribute("data-points")) >= 24 * 12 - 24 - 1
            assert seeded.locator("polyline.line").count() == 2, "the gap breaks the line"
            assert seeded.locator("polygon.band").count() == 2
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "status-page.png"
        page.screenshot(path=str(shot), full_page=True)  # type: ignore[attr-defined]
        print(f"\nscreenshot: {shot}")
        assert shot.stat().st_size > 10_000
        assert requests and all(u.startswith(daemon.url + "/") for u in requests), requests
        assert not [c for c in console if c.startswith("error")], console

        command = subprocess.run(
            [sys.executable, "-m", "agent", "status", "--config", str(daemon.config)],
            check=False, capture_output=True, text=True, timeout=30,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert command.returncode == 0, command.stdout + command.stderr
        assert "web-box: ALL WELL" in command.stdout and "PM2.5" in command.stdout
        assert wait_until(lambda: "summary: sent" in daemon.log.read_text(), 15)
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()[-4000:]
    log = daemon.log.read_text()
    summary = next(line for line in log.splitlines() if "summary: sent" in line)
    assert "INFO" in summary and "sensors up" in summary and "backlog" in summary
    assert (tmp_path / "state" / "history.sqlite").stat().st_size > 0


def test_the_token_guards_a_lan_bind(tmp_path: Path, broker: Broker, browser: object) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    daemon = Daemon(tmp_path, broker, f"bind = '0.0.0.0'\ntoken_file = '{token}'")
    try:
        assert wait_until(lambda: all_reported(daemon.status(TOKEN)), 60), \
            daemon.log.read_text()
        assert daemon.status() is None
        from playwright.sync_api import Error  # noqa: PLC0415 - dev extra only

        for wrong in ({}, {"http_credentials": {"username": "admin",
                                                "password": TOKEN[:-1] + "0"}}):
            ctx = browser.new_context(**wrong)  # type: ignore[attr-defined]
            # Headless Chromium cannot ask for a password: it shows the 401 or gives up.
            try:
                response = ctx.new_page().goto(daemon.url + "/")
                assert response.status == 401 and b"web-box" not in response.body()
            except Error as exc:
                assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
            assert ctx.request.get(daemon.url + "/api/status").status == 401
            ctx.close()
        page, _, console, response = open_page(
            browser, daemon.url, http_credentials={"username": "admin", "password": TOKEN})
        assert response.status == 200  # type: ignore[attr-defined]
        page.wait_for_selector("body[data-plots]", timeout=30_000)  # type: ignore[attr-defined]
        assert page.locator("#device").inner_text() == "web-box"  # type: ignore[attr-defined]
        assert page.locator('tr.value[data-quantity="pm2_5"]').count() == 1  # type: ignore[attr-defined]
        assert not [c for c in console if c.startswith("error")], console
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()[-4000:]
