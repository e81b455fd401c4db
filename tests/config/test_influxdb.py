"""``[sinks.influxdb]``: check-config names file, key and reason (exit 2) for each mistake,
says where the points go, and warns about credentials it cannot protect."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import main

BASE = """
device_id = "nl-ut-0001"
[sensors.pm]
model = "sds011"
port = "/dev/ttyUSB0"
[sensors.spare]
model = "bme280"
bus = 1
enabled = false
[cameras.door]
source = "0"
"""


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], sink: str) -> tuple[int, str, str]:
    path = tmp_path / "agent.toml"
    path.write_text(BASE + "[sinks.influxdb]\n" + sink)
    code = main(["check-config", "--config", str(path)])
    out, err = capsys.readouterr()
    return code, out, err.replace(f"{path}: ", "FILE: ")


def secret(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "secret"
    path.write_text("s3cret\n")
    path.chmod(mode)
    return path


def test_check_config_says_where_the_points_go(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(tmp_path, capsys, 'url = "http://influx:8086"\ndatabase = "lm"\n'
                           'sensors = ["pm", "door"]\ntags = {site = "Utrecht, Noord"}\n')
    assert code == 0, err
    assert "InfluxDB v1 at http://influx:8086/: database lm" in out
    assert err == ""


@pytest.mark.parametrize(("sink", "key", "reason"), [
    ('url = "http://i:8086"', "sinks.influxdb", "api = 'v1' needs database"),
    ('url = "http://i:8086"\napi = "v2"\norg = "o"', "sinks.influxdb",
     "api = 'v2' needs bucket, token_file"),
    ('url = "http://i:8086"\ndatabase = "d"\nbucket = "b"', "sinks.influxdb",
     "bucket belong(s) to the other api"),
    ('url = "http://i:8086"\ndatabase = "d"\nusername = "u"', "sinks.influxdb",
     "username and password_file go together"),
    ('url = "http://i:8086"\ndatabase = "d"\nsensors = ["pm", "spare"]',
     "sinks.influxdb.sensors[1]", "no enabled sensor or camera 'spare'"),
    ('url = "http://i:8086"\ndatabase = "d"\nmeasurement = "{kind}"',
     "sinks.influxdb.measurement", "unknown placeholder(s) ['kind']"),
    ('url = "http://i:8086"\ndatabase = "d"\nmeasurement = "m\\\\"',
     "sinks.influxdb.measurement", "must not end in a backslash"),
    ('url = "http://i:8086"\ndatabase = "d"\ntags = {sensor = "x"}',
     "sinks.influxdb.tags", "tag 'sensor' is reserved"),
    ('url = "http://i:8086"\ndatabase = "d"\ntags = {site = "a\\nb"}',
     "sinks.influxdb.tags", "must not contain a line break"),
    ('url = "http://i:8086"\ndatabase = "d"\ntags = {site = ""}',
     "sinks.influxdb.tags", "must not be empty"),
    ('url = "http://i:8086"\ndatabase = "d"\nprecision = "m"', "sinks.influxdb.precision",
     "'s', 'ms', 'us' or 'ns'"),
    ('url = "udp://i:8089"\ndatabase = "d"', "sinks.influxdb.url", "URL scheme"),
    ('url = "http://i:8086"\ndatabase = "d"\nbatch_lines = 0', "sinks.influxdb.batch_lines",
     "greater than or equal to 1"),
    ('url = "http://i:8086"\ndatabase = "d"\npassword = "x"', "sinks.influxdb.password",
     "unknown key"),
])
def test_each_mistake_is_refused_with_file_key_and_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], sink: str, key: str,
        reason: str) -> None:
    code, _, err = check(tmp_path, capsys, sink + "\n")
    assert code == 2
    assert any(line.startswith(f"FILE: {key}: ") and reason in line
               for line in err.splitlines()), err


def test_credentials_in_clear_text_or_readable_by_others_draw_warnings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = secret(tmp_path, 0o644)
    code, out, err = check(tmp_path, capsys, f'url = "http://influx.lan:8086"\napi = "v2"\n'
                           f'org = "gemeente"\nbucket = "lucht"\ntoken_file = "{path}"\n')
    assert code == 0, err
    assert "InfluxDB v2 at http://influx.lan:8086/: org gemeente, bucket lucht" in out
    assert "warning: FILE: sinks.influxdb.token_file: " in err and "chmod 600" in err
    assert "warning: FILE: sinks.influxdb.url: the InfluxDB credentials cross the network " \
           "in clear text" in err


def test_a_missing_secret_file_is_an_error(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = check(tmp_path, capsys, 'url = "https://i"\ndatabase = "d"\n'
                         'username = "u"\npassword_file = "/nonexistent/pw"\n')
    assert code == 2
    assert "FILE: sinks.influxdb.password_file: " in err
