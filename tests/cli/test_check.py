"""``check-config`` run by an administrator who may read the config but not its secrets."""

from __future__ import annotations

import os
import pwd
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import load_config
from agent.errors import ConfigError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to play another user")


def as_user(name: str, work: Callable[[], int], out: Path) -> int:
    """``work()`` in a child process that has dropped to user ``name``; its exit code."""
    entry = pwd.getpwnam(name)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            sys.stdout = sys.stderr = out.open("a", buffering=1)  # pytest captures fd 1, 2
            code = work()
            sys.stdout.flush()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def strict_load(config: Path) -> int:
    """What ``run`` does first: validate, reading every secret."""
    try:
        load_config(config)
    except ConfigError as exc:
        print(exc, flush=True)
        return 2
    return 0


@pytest.fixture
def etc() -> Iterator[Path]:
    """A config directory the other user can enter (pytest's tmp_path is root's alone)."""
    directory = Path(tempfile.mkdtemp(prefix="lokaalmeten-etc-"))
    directory.chmod(0o755)
    yield directory
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()


def test_a_secret_only_its_owner_reads_is_a_warning_for_others(etc: Path) -> None:
    secret, config, out = etc / "mqtt-password", etc / "agent.toml", etc / "out.txt"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)  # owner root: "the agent's user" in this test
    config.write_text(f'device_id = "box"\n[mqtt]\nhost = "mqtt.example.nl"\nport = 8883\n'
                      f'username = "box"\npassword_file = "{secret}"\n[mqtt.tls]\n')
    config.chmod(0o644)
    out.write_text("")
    out.chmod(0o666)
    assert as_user("nobody", lambda: main(["check-config", "--config", str(config)]),
                   out) == 0, \
        out.read_text()
    text = out.read_text()
    assert f"{config}: OK" in text
    assert f"warning: {config}: mqtt.password_file: {secret} is readable only by its " \
           "owner 'root', not by you: not checked" in text
    # The agent itself is strict: a secret it cannot read stops it at the start.
    out.write_text("")
    assert as_user("nobody", lambda: strict_load(config), out) == 2
    assert f"{config}: mqtt.password_file: cannot read: Permission denied" in out.read_text()
