"""The counter's confinement, tried from inside a confined process: the OS says no.

Each attempt below runs in a fresh Python process after ``confine()``, as code
an attacker got into the counter would: writing files (anywhere, /dev/shm
too), connecting anywhere but the camera, UDP, UNIX sockets, listening,
starting processes and programs. Threads, reading files and the camera's
own connection must still work. Without Landlock network rules (Linux < 6.7)
or libseccomp the tests skip, unless ``LOKAALMETEN_REQUIRE_SANDBOX=1`` (set by
scripts/test), which makes them fail instead.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.vision import sandbox
from tests.vision.streams import REPO

ATTEMPTS = textwrap.dedent("""
    import errno, json, os, socket, subprocess, sys, threading
    from agent.vision import sandbox

    camera, other, tmp = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    if sys.argv[4] == "no-seccomp":
        sandbox._libseccomp = lambda: None
    report = sandbox.confine(camera, (), require=sys.argv[5] == "require")
    results = {"missing": [layer.name for layer in report.missing]}

    def attempt(name, action):
        try:
            action()
            results[name] = "allowed"
        except OSError as exc:
            results[name] = errno.errorcode.get(exc.errno, str(exc))

    def fork():
        if os.fork() == 0:
            os._exit(0)

    attempt("read a file", lambda: open("/etc/passwd").read())
    attempt("write a file", lambda: open(os.path.join(tmp, "frame.raw"), "wb").write(b"x"))
    attempt("create in /dev/shm", lambda: open("/dev/shm/lm-sandbox-test", "wb"))
    attempt("make a directory", lambda: os.mkdir(os.path.join(tmp, "frames")))
    attempt("write /dev/null", lambda: open("/dev/null", "wb").write(b"x"))
    attempt("connect to the camera",
            lambda: socket.create_connection(("127.0.0.1", camera), 2).close())
    attempt("connect elsewhere",
            lambda: socket.create_connection(("127.0.0.1", other), 2).close())
    attempt("open a UDP socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    attempt("open a UNIX socket", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    attempt("listen", lambda: socket.create_server(("127.0.0.1", 0)))
    attempt("fork", fork)
    attempt("run a program", lambda: subprocess.run(["/bin/true"], check=True))
    ran = []
    worker = threading.Thread(target=lambda: ran.append(1))
    worker.start()
    worker.join()
    results["start a thread"] = "allowed" if ran else "denied"
    print(json.dumps(results), flush=True)
    results = {}  # last, because where it works it replaces this process: no line follows
    attempt("exec", lambda: os.execv("/bin/true", ["true"]))
    print(json.dumps(results), flush=True)
""")

DENIED = ["write a file", "create in /dev/shm", "make a directory", "connect elsewhere",
          "open a UDP socket", "open a UNIX socket", "listen", "fork", "run a program",
          "exec"]
ALLOWED = ["read a file", "write /dev/null", "connect to the camera", "start a thread"]


def _available() -> str | None:
    """Why the full sandbox cannot be tested here, or None."""
    import ctypes  # noqa: PLC0415

    abi = sandbox._landlock_abi(ctypes.CDLL(None, use_errno=True))
    if abi < 4:
        return f"Landlock ABI {abi}: network rules need Linux 6.7 (ABI 4)"
    if sandbox._libseccomp() is None:
        return "libseccomp is not installed"
    return None


@pytest.fixture(scope="module")
def full_sandbox() -> None:
    reason = _available()
    if reason is None:
        return
    if os.environ.get("LOKAALMETEN_REQUIRE_SANDBOX") == "1":
        pytest.fail(f"the sandbox is required here: {reason}")
    pytest.skip(reason)


@pytest.fixture
def ports() -> Iterator[tuple[int, int]]:
    camera, other = socket.create_server(("127.0.0.1", 0)), socket.create_server(("127.0.0.1", 0))
    yield camera.getsockname()[1], other.getsockname()[1]
    camera.close()
    other.close()


def attempt(tmp_path: Path, ports: tuple[int, int], seccomp: str = "seccomp",
            mode: str = "warn") -> tuple[dict, str]:
    """Run the attempts confined; (results, stderr). ``seccomp="no-seccomp"`` hides
    libseccomp, ``mode="require"`` makes a missing layer an error."""
    result = subprocess.run(
        [sys.executable, "-c", ATTEMPTS, str(ports[0]), str(ports[1]), str(tmp_path),
         seccomp, mode], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert result.returncode == 0 or "SandboxError" in result.stderr, result.stderr[-2000:]
    found = {"exec": "allowed"}  # unless a line says otherwise (see ATTEMPTS)
    for line in result.stdout.splitlines():
        found.update(json.loads(line))
    return found, result.stderr


def test_a_confined_counter_can_only_read_and_reach_its_camera(
        full_sandbox: None, tmp_path: Path, ports: tuple[int, int]) -> None:
    Path("/dev/shm/lm-sandbox-test").unlink(missing_ok=True)
    found, _ = attempt(tmp_path, ports)
    assert {name: found[name] for name in ALLOWED} == dict.fromkeys(ALLOWED, "allowed")
    refused = {name: found[name] for name in DENIED}
    assert all(result in ("EACCES", "EPERM") for result in refused.values()), refused
    assert not list(tmp_path.iterdir()), "nothing was written"
    assert not Path("/dev/shm/lm-sandbox-test").exists()


def test_a_missing_layer_is_named_in_a_warning_or_refused_when_required(
        full_sandbox: None, tmp_path: Path, ports: tuple[int, int]) -> None:
    found, stderr = attempt(tmp_path, ports, "no-seccomp", "warn")
    assert "seccomp" in found["missing"]
    assert "not enforced" in stderr and "seccomp: libseccomp is not installed" in stderr
    assert found["write a file"] == "EACCES", "Landlock still holds without seccomp"
    _, stderr = attempt(tmp_path, ports, "no-seccomp", "require")
    assert "SandboxError: counter confinement incomplete" in stderr


def test_a_network_camera_is_pinned_to_an_address_before_lock_down() -> None:
    pinned = sandbox.pin_camera("rtsp://user:p%40ss@localhost/live?token=x")
    assert pinned.source == "rtsp://user:p%40ss@127.0.0.1:554/live?token=x"
    assert (pinned.port, pinned.devices) == (554, ())
    assert sandbox.pin_camera("http://127.0.0.1:8080/v.mjpg").port == 8080
    assert sandbox.pin_camera("0") == sandbox.CameraEndpoint("0", None, ("/dev/video0",))
    assert sandbox.pin_camera("/srv/clip.mp4").port is None
    with pytest.raises(OSError):
        sandbox.pin_camera("rtsp://no-such-camera.invalid/live")
