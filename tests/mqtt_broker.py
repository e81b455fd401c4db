"""A real Mosquitto broker on a free port, and a recording subscriber, for tests.

Never port 1883: a broker may already run there, and it is not ours.
"""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout_s: float, step_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())


class Broker:
    """Mosquitto with persistence, so subscriber sessions survive a restart (outage tests)."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise RuntimeError("mosquitto is not installed (apt-get install -y mosquitto)")
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = free_port()
        self.workdir = workdir
        self.config = workdir / "mosquitto.conf"
        # As root, mosquitto drops to user "mosquitto", which cannot write our temp dir.
        self.config.write_text(
            f"user {getpass.getuser()}\n"
            f"listener {self.port} {self.host}\nallow_anonymous true\n"
            f"persistence true\npersistence_location {workdir}/\nautosave_interval 1\n"
            f"log_dest file {workdir}/mosquitto.log\n")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen([self.binary, "-c", str(self.config)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_until(self._listening, 10):
            raise RuntimeError(f"mosquitto did not start on port {self.port}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def _listening(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2):
                return True
        except OSError:
            return False


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool


@dataclass
class Recorder:
    """A paho subscriber with a persistent session that records everything it gets."""

    broker: Broker
    topic: str = "#"
    client_id: str = "test-recorder"
    messages: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                   clean_session=False, protocol=paho.MQTTv311)
        self._client.reconnect_delay_set(0.1, 0.5)
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(self.topic, qos=1)
        self._client.on_subscribe = lambda c, u, mid, rc, p: self._subscribed.set()
        self._client.on_message = self._on_message

    def start(self) -> Recorder:
        self._client.connect(self.broker.host, self.broker.port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("recorder did not subscribe")
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, msg.payload, msg.retain))

    def on(self, suffix: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic.endswith(suffix)]

    def measurements(self) -> list[dict]:
        """Every measurement object received (measured values and health, in the order
        they came), each with its message's boot_id and topic kind added."""
        with self._lock:
            messages = [m for m in self.messages
                        if m.topic.endswith(("/measurements", "/health"))]
        out = []
        for message in messages:
            body = json.loads(message.payload)
            for item in body["measurements"]:
                out.append({**item, "boot_id": body["boot_id"], "device_id": body["device_id"],
                            "topic": message.topic.rsplit("/", 1)[1]})
        return out
