"""systemd notify protocol on a real Unix datagram socket, driven by a running agent."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.app import Agent
from agent.config import parse_config
from agent.emulators.simulation import SimulatedBuses
from agent.errors import StorageError
from agent.health import systemd
from agent.plan import plan
from tests.mqtt_broker import Broker, wait_until


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.1)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


class Listener(threading.Thread):
    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.messages: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue


def test_notify_without_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval_s() == 10.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert systemd.watchdog_interval_s() is None


@pytest.mark.slow  # a whole agent against a real broker
def test_agent_reports_ready_pings_while_healthy_and_stops_pinging_when_not(
        tmp_path: Path, notify_socket: socket.socket, broker: Broker,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # ping every 0.2 s
    config = parse_config(f"""
device_id = "wd-box"
[mqtt]
host = "{broker.host}"
port = {broker.port}
first_connect_jitter_s = 0
[storage]
path = "{tmp_path / 'outbox.sqlite'}"
commit_interval_s = 0.2
[sensors.pm]
model = "sds011"
port = "emulated"
interval_s = 1
""", "wd.toml")
    buses = SimulatedBuses(tmp_path)
    (sensor,) = config.resolved_sensors()
    buses.add(sensor.profile, port=sensor.config.port)
    agent = Agent(plan(config, "wd.toml"), buses)
    listener = Listener(notify_socket)
    listener.start()
    runner = threading.Thread(target=agent.run)
    runner.start()
    try:
        assert wait_until(lambda: listener.messages.count("WATCHDOG=1") >= 3, 10)
        assert listener.messages[0].startswith("READY=1")

        def broken_commit() -> int:
            raise StorageError("disk full (injected)")

        monkeypatch.setattr(agent.outbox, "commit", broken_commit)
        wait_until(lambda: False, 0.5)  # let an in-progress ping pass
        pings = listener.messages.count("WATCHDOG=1")
        wait_until(lambda: False, 1.0)
        assert listener.messages.count("WATCHDOG=1") == pings, "no pings while unhealthy"
        monkeypatch.undo()
        monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.getsockname())
        assert wait_until(lambda: listener.messages.count("WATCHDOG=1") > pings, 5)
    finally:
        agent.request_stop()
        runner.join(20)
        listener.done.set()
        listener.join(2)
        buses.close()
    assert "STOPPING=1" in listener.messages

