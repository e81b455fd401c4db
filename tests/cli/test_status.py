"""``lokaalmeten status``: one screen from the running agent's page, and exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from agent.cli import main
from agent.cli.status import EXIT_UNREACHABLE, render
from agent.models import Measurement, Stats
from agent.status.service import StatusService
from tests.mqtt_broker import free_port
from tests.status.boxes import NOW_MS, sensor
from tests.web.site import Box, service

TOKEN = "a" * 16 + "b" * 16


@pytest.fixture
def box() -> Box:
    return Box()


@pytest.fixture
def site(tmp_path: Path, box: Box) -> Iterator[StatusService]:
    running = service(tmp_path, box)
    running.start()
    running.observe([Measurement("pm", "pm2_5", 12.5, "ug/m3", NOW_MS, 1.0,
                                 stats=Stats(11.0, 14.0, 5, 60.0)),
                     Measurement("square", "line_door_in", 4.0, "{person}", NOW_MS, 1.0)])
    yield running
    running.stop()


def config_for(tmp_path: Path, status: str) -> Path:
    path = tmp_path / "agent.toml"
    # Only [status] is read: a broken or secret rest of the file does not matter.
    path.write_text('device_id = "x"\n[mqtt]\npassword_file = "/root/nope"\n'
                    f"[status]\n{status}\n")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["status", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_healthy_box_exits_0(site: StatusService, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--config", str(config_for(tmp_path, f"port = "
                                                          f"{site._config.port}")))
    assert code == 0
    assert out.splitlines()[0].startswith("box-1: ALL WELL")
    assert "broker.example:8883 connected; 1234 measurements sent" in out
    assert "PM2.5 12.5 µg/m³" in out
    assert "Line door: in 4 people" in out


def test_a_sensor_down_exits_1(site: StatusService, box: Box, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    box.facts = replace(box.facts, sensors=(sensor(state="failing", up=False,
                                                   last_error="no reply"),))
    code, out, _ = run(capsys, "--url", f"http://127.0.0.1:{site._config.port}")
    assert code == 1
    assert "1 PROBLEM" in out and "ERROR    pm: down: no reply" in out


def test_json_is_the_agents_document(site: StatusService,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--url", f"http://127.0.0.1:{site._config.port}", "--json")
    assert code == 0 and json.loads(out)["device_id"] == "box-1"


def test_no_agent_running_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--config", str(config_for(tmp_path, f"port = {free_port()}")))
    assert code == EXIT_UNREACHABLE == 3
    assert "The agent is not running" in err and "systemctl status" in err


def test_page_disabled_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--config", str(config_for(tmp_path, "enabled = false")))
    assert code == 3 and "disabled" in err and "enabled = false" in err


def test_token_refused_exits_3(tmp_path: Path, box: Box,
                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "right").write_text(TOKEN)
    (tmp_path / "wrong").write_text(TOKEN[::-1])
    running = service(tmp_path, box, bind="0.0.0.0", token_file=str(tmp_path / "right"))
    running.start()
    try:
        port = running._config.port
        code, _, err = run(capsys, "--config", str(config_for(
            tmp_path, f"port = {port}\nbind = '0.0.0.0'\ntoken_file = '{tmp_path}/wrong'")))
        assert code == 3 and "token was refused" in err
        code, out, _ = run(capsys, "--config", str(config_for(
            tmp_path, f"port = {port}\nbind = '0.0.0.0'\ntoken_file = '{tmp_path}/right'")))
        assert code == 0 and "ALL WELL" in out
    finally:
        running.stop()


def test_bad_status_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--config", str(config_for(tmp_path, "bind = '0.0.0.0'")))
    assert code == 2 and "status: bind = '0.0.0.0'" in err
    code, _, err = run(capsys, "--config", str(tmp_path / "missing.toml"))
    assert code == 2 and "no such file" in err


def test_render_fits_the_terminal(site: StatusService) -> None:
    doc = site.report(0.0)
    for line in render(doc, 60).splitlines():
        assert len(line) <= 60
