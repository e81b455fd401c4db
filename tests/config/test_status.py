"""The ``[status]`` section: the page stays on the box unless a token guards the LAN."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import parse_config
from agent.config.status import DEFAULT_PORT
from agent.errors import ConfigError

BASE = 'device_id = "nl-ut-0001"\n'
TOKEN = "0123456789abcdef0123456789abcdef"


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "agent.toml")
    return info.value.problems


def test_defaults_keep_the_page_on_the_box() -> None:
    status = parse_config(BASE, "agent.toml").status
    assert status.enabled and status.loopback and status.token_file is None
    assert status.local_url() == f"http://127.0.0.1:{DEFAULT_PORT}"
    assert parse_config(BASE, "agent.toml").health.summary_interval_s == 600


@pytest.mark.parametrize(("table", "key", "reason"), [
    ("bind = '0.0.0.0'", "status", "set token_file too"),
    ("bind = '192.168.1.20'", "status", "set token_file too"),
    ("bind = 'box.local'", "status.bind", "must be an IP address"),
    ("port = 0", "status.port", "greater than or equal to 1"),
    ("history_days = 30", "status.history_days", "less than or equal to 7"),
    ("history_days = 0", "status.history_days", "greater than 0"),
    ("token_file = '/nonexistent/token'", "status.token_file", "does not point to a file"),
    ("allowed_hosts = ['evil.example/x']", "status.allowed_hosts", "are not host names"),
    ("listen = 1", "status.listen", "unknown key"),
])
def test_mistakes_name_key_and_reason(table: str, key: str, reason: str) -> None:
    found = problems(BASE + "[status]\n" + table + "\n")
    assert any(k == key and reason in r for k, r in found), found


def test_summary_interval_is_validated() -> None:
    found = problems(BASE + "[health]\nsummary_interval_s = -1\n")
    assert found[0][0] == "health.summary_interval_s"


def test_a_lan_bind_with_a_good_token(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o640)
    config = parse_config(BASE + f"[status]\nbind = '::'\ntoken_file = '{token}'\n", "a.toml")
    assert not config.status.loopback and config.status.token() == TOKEN
    assert config.status.local_url() == f"http://[::1]:{DEFAULT_PORT}"
    assert config.warnings() == []
    token.chmod(0o644)
    assert [k for k, _ in config.warnings()] == ["status.token_file"]
    disabled = parse_config(BASE + "[status]\nenabled = false\nbind = '0.0.0.0'\n", "a.toml")
    assert not disabled.status.enabled


@pytest.mark.parametrize("content", ["short", "has a space inside the token text", ""])
def test_weak_tokens_are_refused(tmp_path: Path, content: str) -> None:
    token = tmp_path / "token"
    token.write_text(content)
    found = problems(BASE + f"[status]\nbind = '0.0.0.0'\ntoken_file = '{token}'\n")
    assert any(k == "status.token_file" and "at least 16" in r for k, r in found), found


def test_health_values_must_be_refreshed_at_least_as_often_as_they_may_change() -> None:
    found = problems(BASE + "[health]\nmin_send_interval_s = 600\nrefresh_s = 300\n")
    assert found[0][0] == "health" and "refresh_s" in found[0][1]
