"""``[mqtt.home_assistant]``: opt-in, checked by check-config (file, key, reason, exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import main
from agent.config import parse_config

BASE = """
device_id = "nl-ut-0001"
[sensors.pm]
model = "sds011"
port = "/dev/ttyUSB0"
[sensors.climate]
model = "bme280"
bus = 1
[sensors.spare]
model = "sht4x"
bus = 1
enabled = false
[mqtt.home_assistant]
"""


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str) -> tuple[int, str]:
    path = tmp_path / "agent.toml"
    path.write_text(BASE + section)
    code = main(["check-config", "--config", str(path)])
    return code, capsys.readouterr().err.replace(f"{path}: ", "FILE: ")


def test_absent_means_off_and_present_announces_every_enabled_sensor() -> None:
    assert parse_config('device_id = "x"', "t").mqtt.home_assistant is None
    ha = parse_config(BASE, "t").mqtt.home_assistant
    assert ha is not None and ha.discovery_prefix == "homeassistant"
    assert ha.announced(["pm", "climate"]) == ["pm", "climate"]
    chosen = parse_config(BASE + 'sensors = ["climate"]\n', "t").mqtt.home_assistant
    assert chosen is not None and chosen.announced(["pm", "climate"]) == ["climate"]
    off = parse_config(BASE + "enabled = false\n", "t").mqtt.home_assistant
    assert off is not None and off.announced(["pm", "climate"]) == []


def test_check_config_accepts_a_plain_section(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, capsys, 'discovery_prefix = "ha/discovery"\n')
    assert (code, err) == (0, "")


@pytest.mark.parametrize(("section", "key", "reason"), [
    ('sensors = ["pm", "nosuch"]', "mqtt.home_assistant.sensors[1]",
     "no enabled sensor 'nosuch'"),
    ('sensors = ["spare"]', "mqtt.home_assistant.sensors[0]", "no enabled sensor 'spare'"),
    ('sensors = ["pm", "pm"]', "mqtt.home_assistant.sensors[1]", "'pm' is listed twice"),
    ('discovery_prefix = "home/#"', "mqtt.home_assistant.discovery_prefix", "'#'"),
    ('discovery_prefix = "home//assistant"', "mqtt.home_assistant.discovery_prefix",
     "empty levels"),
    ('discovery_prefx = "x"', "mqtt.home_assistant.discovery_prefx", ""),
])
def test_check_config_names_file_key_and_reason(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                section: str, key: str, reason: str) -> None:
    code, err = check(tmp_path, capsys, section + "\n")
    assert code == 2
    assert any(line.startswith(f"FILE: {key}: ") and reason in line
               for line in err.splitlines()), err
