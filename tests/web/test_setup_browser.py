"""Camera set-up in a real headless Chromium, against the real daemon counting vtest.avi.

The daemon (``python -m agent simulate``) runs a camera on the bundled test video with
k = 3; the page switches set-up mode on with the token, waits for heat map cells (the
counter's k-anonymous grid, the only thing of the video that reaches the page), draws
a line with mouse events, saves it, and the saved config holds the line and passes
``lokaalmeten check-config``; after the reload the page shows it from the running
configuration. The screenshot is kept as ``tests/web/artifacts/camera-setup.png``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.fast_box import fast_head
from tests.mqtt_broker import Broker, free_port, wait_until
from tests.vision.streams import INT8_MODEL, require_media
from tests.web.test_browser import ARTIFACTS, ROOT, TOKEN, browser, open_page  # noqa: F401

pytestmark = pytest.mark.slow


def config_text(video: Path, port: int, token: Path) -> str:
    return fast_head("setup-box", 5) + f"""
[cameras.street]
source = "{video}"
model = "{INT8_MODEL}"
fps_cap = 5
interval_s = 60
[cameras.street.setup]   # a comment the editor must keep
min_people = 3
[[cameras.street.lines]]
name = "path"
x1 = 230
y1 = 340
x2 = 230
y2 = 170

[status]
port = {port}
token_file = "{token}"
"""


def setup_doc(url: str) -> dict | None:
    request = urllib.request.Request(url + "/api/setup",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return None


def cells(page: object) -> int:
    """Heat map cells the page drew (the CSP forbids Playwright's eval'd wait functions)."""
    return int(page.locator("#frame").get_attribute("data-cells") or 0)  # type: ignore[attr-defined]


def test_draw_a_line_on_the_heat_map_and_save_it(tmp_path: Path, broker: Broker,
                                                 browser: object) -> None:  # noqa: F811
    video = require_media()
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    port = free_port()
    config = tmp_path / "agent.toml"
    config.write_text(config_text(video, port, token))
    log = tmp_path / "agent.log"
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "simulate", "--config", str(config), "--broker",
         f"{broker.host}:{broker.port}", "--state-dir", str(tmp_path / "state")],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert wait_until(lambda: setup_doc(url) is not None, 60), log.read_text()
        forged = urllib.request.Request(  # no token header: refused, whatever else it carries
            url + "/api/setup/start", data=b'{"camera": "street", "minutes": 5}',
            headers={"Content-Type": "application/json",
                     "Authorization": f"Bearer {TOKEN}"}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(forged, timeout=5)
        assert refused.value.code == 403

        page, requests, console, _ = open_page(  # reading needs the token too (Basic)
            browser, url, http_credentials={"username": "admin", "password": TOKEN})
        page.goto(url + "/setup")  # type: ignore[attr-defined]
        page.fill("#token", TOKEN)  # type: ignore[attr-defined]
        page.fill("#minutes", "10")  # type: ignore[attr-defined]
        page.click("#start")  # type: ignore[attr-defined]
        page.wait_for_selector("body[data-setup=on]", timeout=30_000)  # type: ignore[attr-defined]
        assert wait_until(lambda: cells(page) >= 3, 900, 1.0), log.read_text()[-3000:]
        assert page.locator("#frame").get_attribute("data-frame") == "768x576"  # type: ignore[attr-defined]

        page.click("#mode-line")  # type: ignore[attr-defined]
        page.fill("#name", "door")  # type: ignore[attr-defined]
        box = page.locator("#frame").bounding_box()  # type: ignore[attr-defined]
        mouse = page.mouse  # type: ignore[attr-defined]
        mouse.move(box["x"] + 500, box["y"] + 100)
        mouse.down()
        mouse.move(box["x"] + 560, box["y"] + 250, steps=8)
        mouse.move(box["x"] + 600, box["y"] + 400, steps=8)
        mouse.up()
        page.click("#save")  # type: ignore[attr-defined]
        page.wait_for_selector("body[data-saved]", timeout=30_000)  # type: ignore[attr-defined]
        assert not page.locator("#errors li").count()  # type: ignore[attr-defined]

        text = config.read_text()
        assert "# a comment the editor must keep" in text
        lines = {x["name"]: x for x in tomllib.loads(text)["cameras"]["street"]["lines"]}
        assert set(lines) == {"path", "door"}
        door = lines["door"]
        assert door["x1"] < door["x2"] and door["y1"] < door["y2"]
        check = subprocess.run([sys.executable, "-m", "agent", "check-config", "--config",
                                str(config)], capture_output=True, text=True, check=False,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        assert wait_until(lambda: any(x["name"] == "door" for c in (setup_doc(url) or {})
                                      .get("cameras", []) for x in c["lines"]), 60), \
            log.read_text()[-3000:]
        page.wait_for_selector('#counts tr[data-line="door"]', timeout=30_000)  # type: ignore[attr-defined]
        page.wait_for_selector("body[data-setup=on]", timeout=30_000)  # type: ignore[attr-defined]
        assert wait_until(lambda: cells(page) >= 1, 900, 1.0), log.read_text()[-3000:]
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "camera-setup.png"
        page.screenshot(path=str(shot), full_page=True)  # type: ignore[attr-defined]
        print(f"\nscreenshot: {shot}")
        assert requests and all(u.startswith(url + "/") for u in requests), requests
        assert not [c for c in console if c.startswith("error")], console
    finally:
        process.terminate()
        assert process.wait(30) == 0, log.read_text()[-4000:]
