"""Configuration: every class of mistake is named by file, key and reason; exit code 2."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
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


# -- hardening (issue 12, findings 1 and 8) -----------------------------------------------

@pytest.mark.parametrize(("text", "key", "reason"), [
    # Triggers that used to pass check-config and then killed the forwarder thread.
    (BASE + f"[mqtt]\ntopic_prefix = '{'p' * 65_536}'", "mqtt.topic_prefix", "at most 256"),
    (BASE + "[mqtt]\nfirst_connect_jitter_s = inf", "mqtt.first_connect_jitter_s", "finite"),
    (BASE + "[mqtt]\nreconnect_max_s = nan", "mqtt.reconnect_max_s", "finite"),
    (BASE + "[mqtt]\nfirst_connect_jitter_s = 1e300", "mqtt.first_connect_jitter_s",
     "less than or equal"),
    # Ids anchored with `$` accepted a trailing newline.
    ('device_id = "box\\n"', "device_id", "topic level"),
    (BASE + '[sensors."co2\\n"]\nmodel = "scd41"', "sensors", "must be 1-32"),
    # Topic prefixes that are not a plain topic.
    (BASE + "[mqtt]\ntopic_prefix = '$SYS/lokaalmeten'", "mqtt.topic_prefix", "'$'"),
    (BASE + "[mqtt]\ntopic_prefix = 'a//b'", "mqtt.topic_prefix", "empty level"),
    (BASE + "[mqtt]\ntopic_prefix = '/a'", "mqtt.topic_prefix", "empty level"),
    (BASE + "[mqtt]\ntopic_prefix = 'a/'", "mqtt.topic_prefix", "empty level"),
    (BASE + "[mqtt]\ntopic_prefix = 'a/+/b'", "mqtt.topic_prefix", "wildcard"),
    (BASE + "[mqtt]\ntopic_prefix = 'a#'", "mqtt.topic_prefix", "wildcard"),
    (BASE + '[mqtt]\ntopic_prefix = "a\\nb"', "mqtt.topic_prefix", "control character"),
    # A sensor named like the heartbeat's own 'sensor'.
    (BASE + "[sensors.agent]\nmodel = 'sht3x'", "sensors", "'agent'"),
    (BASE + "[storage]\nmax_age_days = inf", "storage.max_age_days", "finite"),
    (BASE + "[storage]\nmax_age_days = nan", "storage.max_age_days", "finite"),
])
def test_hardening_each_case_names_key_and_reason(text: str, key: str, reason: str) -> None:
    found = problems(text)
    assert any(k == key and reason in r for k, r in found), found


@pytest.mark.parametrize("line", ["topic_prefix = '" + "p" * 65_536 + "'",
                                  "first_connect_jitter_s = inf"])
def test_forwarder_killers_are_refused_by_check_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(BASE + "[mqtt]\n" + line + "\n")
    assert main(["check-config", "--config", str(path)]) == 2
    key = line.split(" ", maxsplit=1)[0]
    assert f"{path}: mqtt.{key}: " in capsys.readouterr().err


def _password_config(tmp_path: Path, *, tls: bool = False, waiver: bool = False) -> Path:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    text = BASE + f"[mqtt]\nport = 8883\nusername = 'box'\npassword_file = '{secret}'\n"
    if waiver:
        text += "allow_plaintext_credentials = true\n"
    if tls:
        text += "[mqtt.tls]\n"
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_credentials_without_tls_are_refused(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = _password_config(tmp_path)
    assert main(["check-config", "--config", str(path)]) == 2
    assert f"{path}: mqtt: " in capsys.readouterr().err
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert any(k == "mqtt" and "clear text" in r for k, r in info.value.problems)


def test_plaintext_waiver_is_accepted_with_a_warning(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = _password_config(tmp_path, waiver=True)
    assert main(["check-config", "--config", str(path)]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "mqtt.allow_plaintext_credentials" in err
    assert "clear text" in err


def test_credentials_over_tls_need_no_waiver_and_warn_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _password_config(tmp_path, tls=True)
    assert main(["check-config", "--config", str(path)]) == 0
    assert "warning" not in capsys.readouterr().err


def test_secret_files_readable_by_others_are_warned_about(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _password_config(tmp_path, tls=True)
    (tmp_path / "password").chmod(0o644)
    assert main(["check-config", "--config", str(path)]) == 0
    err = capsys.readouterr().err
    assert "mqtt.password_file" in err and "readable by group or others" in err
    key = tmp_path / "client.key"
    key.write_text("not really a key\n")
    key.chmod(0o640)
    cert = tmp_path / "client.crt"
    cert.write_text("not really a certificate\n")
    path.write_text(path.read_text() + f"cert_file = '{cert}'\nkey_file = '{key}'\n")
    assert main(["check-config", "--config", str(path)]) == 0
    assert "mqtt.tls.key_file" in capsys.readouterr().err


def _check_config_as_nobody(path: Path) -> tuple[int, str]:
    """Run check-config in a forked child that dropped root: the kernel decides readability."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop privileges, report on the pipe, never return into pytest
        code = 99
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            with os.fdopen(write_end, "w") as out, contextlib.redirect_stderr(out):
                code = main(["check-config", "--config", str(path)])
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as stream:
        err = stream.read()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), err


@pytest.mark.parametrize("secret", ["password_file", "key_file"])
def test_unreadable_secret_file_fails_check_config(secret: str) -> None:
    base = Path(tempfile.mkdtemp(prefix="lm-unreadable-"))
    try:
        base.chmod(0o755)
        password = base / "password"
        password.write_text("s3cret\n")
        key, cert = base / "client.key", base / "client.crt"
        key.write_text("key\n")
        cert.write_text("cert\n")
        for path in (password, key, cert):
            path.chmod(0o644)  # readable by the checking user ...
        (password if secret == "password_file" else key).chmod(0o000)  # ... except this one
        config = base / "agent.toml"
        config.write_text(BASE + f"[mqtt]\nusername = 'box'\npassword_file = '{password}'\n"
                          f"[mqtt.tls]\ncert_file = '{cert}'\nkey_file = '{key}'\n")
        config.chmod(0o644)
        if os.geteuid() == 0:
            code, err = _check_config_as_nobody(config)
        else:
            with contextlib.redirect_stderr(io.StringIO()) as captured:
                code = main(["check-config", "--config", str(config)])
            err = captured.getvalue()
    finally:
        shutil.rmtree(base)
    assert code == 2, err
    key_path = "mqtt.password_file" if secret == "password_file" else "mqtt.tls.key_file"
    assert f"{config}: {key_path}: cannot read" in err and "Permission denied" in err


def test_invalid_utf8_names_file_and_reason(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(b'device_id = "box"\n# caf\xe9 latin-1\n')
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: not valid UTF-8" in err and "Traceback" not in err
