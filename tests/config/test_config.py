"""Configuration: every class of mistake is named by file, key and reason; exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import main
from agent.config import load_config, parse_config
from agent.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BASE = """
device_id = "nl-ut-0001"
[sensors.pm]
model = "sds011"
port = "/dev/ttyUSB0"
"""


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "agent.toml")
    assert all(str(info.value).startswith("agent.toml: ") for _ in [0])
    return info.value.problems


@pytest.mark.parametrize(("text", "key", "reason"), [
    ("device_id = 'a/b'", "device_id", "topic level"),
    ("", "device_id", "Field required"),
    (BASE + "[mqtt]\nhots = 'x'", "mqtt.hots", "unknown key"),
    (BASE + "[mqtt]\nport = 70000", "mqtt.port", "less than or equal to 65535"),
    (BASE + "[mqtt]\nprotocol = '4'", "mqtt.protocol", "'3.1.1' or '5'"),
    (BASE + "[mqtt]\ntopic_prefix = 'a/#'", "mqtt.topic_prefix", "must not contain"),
    (BASE + "[mqtt]\npassword_file = '/nonexistent/pw'", "mqtt.password_file",
     "does not point to a file"),
    (BASE + "[mqtt.tls]\ncert_file = '/etc/hostname'", "mqtt.tls", "together"),
    (BASE + "[storage]\nmax_rows = 5", "storage.max_rows", "greater than or equal"),
    (BASE + "[sensors.co2]\nmodel = 'nosuch'", "sensors.co2", "unknown model 'nosuch'"),
    (BASE + "[sensors.p2]\nmodel = 'sds011'", "sensors.p2", "set port"),
    (BASE + "[sensors.p2]\nmodel = 'sds011'\nport='x'\naddress=0x69", "sensors.p2",
     "bus/address do not apply"),
    (BASE.replace('port = "/dev/ttyUSB0"', 'port = "/dev/ttyUSB0"\ninterval_s = 0.1'),
     "sensors.pm", "below the sds011 minimum"),
    (BASE.replace('port = "/dev/ttyUSB0"', 'port = "/dev/ttyUSB0"\ninterval_s = 10\nwindow_s = 5'),
     "sensors.pm", "shorter than interval_s"),
    (BASE + "[sensors.pm.calibration.pm4]\nscale = 2", "sensors.pm", "unknown quantities"),
    (BASE + "[sensors.PM]\nmodel = 'sds011'\nport='x'", "sensors", "must be 1-32"),
    (BASE.replace("[sensors.pm]", "[sensors.pm]\nintervl_s = 3"), "sensors.pm.intervl_s",
     "unknown key"),
])
def test_each_mistake_names_key_and_reason(text: str, key: str, reason: str) -> None:
    found = problems(text)
    assert any(k == key and reason in r for k, r in found), found


def test_all_mistakes_are_reported_at_once() -> None:
    found = problems("device_id = 'x y'\n[mqtt]\nport = 0\nkeepalive_s = 1\n")
    assert {k for k, _ in found} == {"device_id", "mqtt.port", "mqtt.keepalive_s"}


def test_invalid_toml_names_the_line() -> None:
    (only,) = problems("device_id = \n")
    assert only[0] == "" and "line 1" in only[1]


def test_profile_defaults_fill_in() -> None:
    (sensor,) = parse_config(BASE, "agent.toml").resolved_sensors()
    assert (sensor.interval_s, sensor.window_s, sensor.baudrate, sensor.warmup_s) == \
        (60.0, 60.0, 9600, 30.0)


def test_examples_are_valid() -> None:
    for path in EXAMPLES.glob("*.toml"):
        assert main(["check-config", "--config", str(path)]) == 0, path


def test_cli_exit_code_2_names_file_key_and_reason(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BASE + "[sensors.pm.options]\nreply_timeout_z = 1\n")
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: sensors.pm.options.reply_timeout_z: unknown option for sds011" in err


def test_cli_bad_option_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BASE + "[sensors.pm.options]\nreply_timeout_s = 'soon'\n")
    assert main(["check-config", "--config", str(path)]) == 2
    assert "sensors.pm.options.reply_timeout_s" in capsys.readouterr().err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(tmp_path / "none.toml")]) == 2
    assert "none.toml: cannot read" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        load_config(tmp_path / "none.toml")
