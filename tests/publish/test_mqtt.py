"""MqttSession against servers that misbehave before CONNACK."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from agent.config.mqtt import MqttConfig
from agent.errors import PublishError
from agent.publish.mqtt import MqttSession


@pytest.fixture
def closing_server() -> Iterator[int]:
    """A TCP server that reads the client's first bytes (its CONNECT) and hangs up, as
    Mosquitto does when a TLS client brings no certificate it asked for."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            with conn:
                conn.recv(1024)

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def test_a_connection_closed_before_connack_fails_with_that_reason(closing_server: int) -> None:
    """Not 'no CONNACK in time' after the whole timeout: the forwarder then counts no
    failure for that long, and its log hides why."""
    config = MqttConfig.model_validate({"host": "127.0.0.1", "port": closing_server})
    session = MqttSession(config, "box-1", "lokaalmeten/box-1/status")
    with pytest.raises(PublishError, match="closed before CONNACK"):
        session.connect(timeout_s=60.0)
    assert not session.connected
