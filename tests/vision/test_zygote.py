"""The zygote forks counters on plain-data requests only, and never outlives its use.

A request is JSON with exactly a camera id, settings and a log level, plus the
record pipe and a status socket; anything else (a pickle, an extra field such
as an entry point of the sender's choosing, missing descriptors) starts
nothing, and the zygote goes on serving. When the zygote dies, the daemon's
handle reports its counter gone and the counter does not count on.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
from collections.abc import Iterator
from multiprocessing.connection import Pipe
from pathlib import Path

import pytest

from agent.vision.zygote import ChildSpec, Zygote
from tests.mqtt_broker import wait_until

pytestmark = pytest.mark.slow

SPEC = ChildSpec("cam", {"source": "/dev/null"}, "WARNING")


@pytest.fixture
def zygote() -> Iterator[Zygote]:
    instance = Zygote("tests.vision.children:lingering")
    instance.start()
    yield instance
    instance.close()


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _ask(zygote: Zygote, message: bytes, n_fds: int = 2) -> bytes:
    """Send a raw request; what comes back on its status socket (b"" when refused)."""
    reader, writer = Pipe(duplex=False)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with reader, writer, ours, theirs:
        assert zygote._control is not None
        socket.send_fds(zygote._control, [message], [writer.fileno(), theirs.fileno()][:n_fds])
        theirs.close()
        ours.settimeout(10)
        answer, fds, _, _ = socket.recv_fds(ours, 256, 1)
        for fd in fds:
            os.close(fd)
        return answer


@pytest.mark.parametrize("message, n_fds", [
    (pickle.dumps(SPEC), 2),
    (json.dumps({**json.loads(SPEC.to_json()), "entry": "os:system"}).encode(), 2),
    (json.dumps({"camera_id": 1, "settings": {}, "log_level": "INFO"}).encode(), 2),
    (SPEC.to_json(), 1),
], ids=["pickle", "an entry point of its own", "wrong types", "one descriptor"])
def test_anything_but_a_plain_request_starts_nothing(zygote: Zygote, message: bytes,
                                                      n_fds: int) -> None:
    before = _children(zygote)
    assert _ask(zygote, message, n_fds) == b"", "refused: the status socket just closes"
    assert _children(zygote) == before
    answer = json.loads(_ask(zygote, SPEC.to_json()))
    assert answer["pid"] in _children(zygote), "and the zygote serves the next request"
    os.kill(answer["pid"], signal.SIGKILL)


def _children(zygote: Zygote) -> set[int]:
    path = Path(f"/proc/{zygote.pid}/task/{zygote.pid}/children")
    return {int(pid) for pid in path.read_text().split()}


def _ignored(pid: int) -> int:
    """The signals a process ignores, as a bit mask (bit n-1 for signal n)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return int(line.split()[1], 16)
    raise AssertionError("no SigIgn line")


def test_a_counter_is_born_ignoring_the_set_up_signal(zygote: Zygote) -> None:
    """The daemon renews a set-up lease as soon as it holds a counter's pidfd: on a busy CPU
    that can be before the forked child ran a line, so the ignore must be inherited."""
    assert zygote.pid is not None
    assert _ignored(zygote.pid) & 1 << (signal.SIGUSR1 - 1)
    reader, writer = Pipe(duplex=False)
    with reader, writer:
        counter = zygote.launch(SPEC, writer)
    try:
        counter.renew_setup()  # at once, like the daemon; this child never installs a handler
        assert _ignored(counter.pid) & 1 << (signal.SIGUSR1 - 1)
        assert not wait_until(lambda: not counter.is_alive(), 2), "the lease signal killed it"
    finally:
        counter.kill()
        counter.close()


def test_a_counter_that_lost_its_zygote_is_reported_gone_and_killed(zygote: Zygote) -> None:
    reader, writer = Pipe(duplex=False)
    with reader, writer:
        counter = zygote.launch(SPEC, writer)
    assert counter.is_alive() and _running(counter.pid)
    assert zygote.pid is not None
    os.kill(zygote.pid, signal.SIGKILL)
    assert wait_until(lambda: not counter.is_alive(), 10)
    assert counter.exitcode is None, "nobody reported how it ended"
    assert wait_until(lambda: not _running(counter.pid), 10), "an orphan kept running"
    counter.close()


def test_exit_codes_and_signals_reach_the_daemon(zygote: Zygote) -> None:
    reader, writer = Pipe(duplex=False)
    with reader, writer:
        counter = zygote.launch(SPEC, writer)
    counter.terminate()
    counter.join(10)
    assert counter.exitcode == -signal.SIGTERM and not counter.is_alive()
    counter.close()
