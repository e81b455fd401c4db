"""The distributed brokers of the fleet benchmark, each started privately on free ports.

Two set-ups, both driven through one small interface (:class:`FleetBroker`):

* :class:`MosquittoBridgePair`: an *edge* Mosquitto the boxes connect to, bridged to
  a *central* one where the receiver subscribes (one edge per district in the field);
* :class:`RabbitCluster`: two RabbitMQ nodes (Debian's rabbitmq-server) joined with
  ``rabbitmqctl join_cluster``, with the MQTT plugin; the boxes are spread over both.

Nothing here touches a broker already running on this machine: every port is
free-picked, RabbitMQ gets its own epmd port, Erlang cookie, config, data and log
directories and ignores ``/etc/rabbitmq``; Mosquitto runs on the tests' helper.

Beside them, two probes a dashboard or an operator would run: what a new subscriber
sees of the boxes' retained status, and whether a node accepts a new client.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import paho.mqtt.client as paho
from _broker import Broker, wait_until
from _fleet_agents import TOPIC_PREFIX
from paho.mqtt.enums import CallbackAPIVersion

from tests.mqtt_broker import free_port

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
"""The real scripts: /usr/sbin/rabbitmq-server would switch to the system's rabbitmq user."""


@dataclass(frozen=True)
class Endpoint:
    """Where an MQTT client connects (duck-types the tests' ``Broker`` for ``Recorder``)."""

    host: str
    port: int


@dataclass(frozen=True)
class Restart:
    """One broker restart of the run: what to stop and start, and where it listens."""

    label: str
    endpoint: Endpoint
    stop: Callable[[], None]
    start: Callable[[], None]


class FleetBroker(Protocol):
    name: str
    protocol: str
    receiver: Endpoint

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def agent_endpoints(self) -> list[Endpoint]: ...
    def restarts(self) -> list[Restart]: ...
    def pids(self) -> dict[str, int | None]: ...
    def status_endpoints(self) -> dict[str, Endpoint]: ...
    def describe(self) -> str: ...


def listening(endpoint: Endpoint) -> bool:
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=0.2):
            return True
    except OSError:
        return False


class Mosquitto(Broker):
    """The tests' Mosquitto, plus its pid (for CPU and RSS) and extra config lines."""

    def __init__(self, workdir: Path, extra: str = "") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir)
        self.config.write_text(self.config.read_text() + extra)

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.host, self.port)


QUEUE_LIMITS = "max_queued_messages 100000\n"
"""Mosquitto's default (1000 per client) drops QoS 1 messages once a slow receiver or a
bridge falls that far behind; a drained backlog of a whole district easily does."""


class MosquittoBridgePair:
    """Edge broker (the boxes) bridged to a central broker (the receiver)."""

    name = "mosquitto-bridge"
    protocol = "5"

    def __init__(self, workdir: Path) -> None:
        self.central = Mosquitto(workdir / "central", QUEUE_LIMITS)
        # Persistence (set by the helper) plus cleansession false: messages the edge has
        # acknowledged but not yet forwarded survive the edge's restart.
        self.edge = Mosquitto(workdir / "edge", QUEUE_LIMITS + (
            "connection central\n"
            f"address {self.central.host}:{self.central.port}\n"
            "topic fleet/# out 1\n"
            "cleansession false\n"
            "remote_clientid fleet-edge-1\n"
            "local_clientid fleet-edge-1-local\n"
            "restart_timeout 1 10\n"))
        self.receiver = self.central.endpoint

    def start(self) -> None:
        self.central.start()
        self.edge.start()

    def stop(self) -> None:
        self.edge.stop()
        self.central.stop()

    def agent_endpoints(self) -> list[Endpoint]:
        return [self.edge.endpoint]

    def restarts(self) -> list[Restart]:
        return [Restart("edge restart", self.edge.endpoint, self.edge.stop, self.edge.start)]

    def pids(self) -> dict[str, int | None]:
        return {"edge": self.edge.pid, "central": self.central.pid}

    def status_endpoints(self) -> dict[str, Endpoint]:
        return {"central": self.central.endpoint, "edge": self.edge.endpoint}

    def describe(self) -> str:
        return "Mosquitto 2.0 edge -> bridge (QoS 1, cleansession false) -> central, MQTT 5"


class RabbitNode:
    """One RabbitMQ node with its own name, ports, data, logs and config."""

    def __init__(self, name: str, workdir: Path, env: dict[str, str]) -> None:
        self.node = f"{name}@localhost"
        self.workdir = workdir
        self.mqtt = Endpoint("127.0.0.1", free_port())
        amqp, dist = free_port(), free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "rabbitmq.conf"
        config.write_text(f"listeners.tcp.default = 127.0.0.1:{amqp}\n"
                          f"mqtt.listeners.tcp.default = 127.0.0.1:{self.mqtt.port}\n"
                          "mqtt.allow_anonymous = true\n"
                          "log.console = false\nlog.file.level = info\n")
        self.env = {**env, "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT": str(amqp),
                    "RABBITMQ_DIST_PORT": str(dist), "RABBITMQ_CONFIG_FILE": str(config),
                    "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
                    "RABBITMQ_LOG_BASE": str(workdir / "log")}
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Launch the node; returns at once (see :meth:`wait`)."""
        with (self.workdir / "stdout.log").open("ab") as out:
            # Its own session: Ctrl-C in the terminal is ours to handle, in order.
            self._process = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")],
                                             env=self.env, stdout=out, stderr=out,
                                             start_new_session=True)

    def wait(self, timeout_s: float = 300.0) -> None:
        """Until the MQTT listener accepts connections (the node's last boot step; on a
        two-node cluster that can take minutes, see docs/scaling.md)."""
        if not wait_until(lambda: listening(self.mqtt), timeout_s, step_s=0.02):
            raise RuntimeError(f"RabbitMQ node {self.node} did not start; see {self.workdir}")

    def boot(self) -> None:
        self.start()
        self.wait()

    def stop(self) -> None:
        """Graceful stop, as ``systemctl stop`` does (the script turns TERM into a stop)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def ctl(self, *args: str) -> None:
        subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args],
                       env=self.env, check=True, capture_output=True, timeout=120)

    @property
    def pid(self) -> int | None:
        """The Erlang VM's pid (the script's child), for CPU and RSS."""
        process = self._process
        if process is None or process.poll() is not None:
            return None
        return child_pid(process.pid, "beam.smp")


class RabbitCluster:
    """Two RabbitMQ nodes in one cluster; boxes alternate between them."""

    name = "rabbitmq-cluster"
    protocol = "3.1.1"  # the MQTT plugin of RabbitMQ 3.10 speaks 3.1.1 only

    def __init__(self, workdir: Path, *, mirrored: bool = False) -> None:
        self.mirrored = mirrored
        for tool in ("rabbitmq-server", "rabbitmqctl"):
            if not (RABBIT_BIN / tool).exists():
                raise RuntimeError(f"{RABBIT_BIN / tool} missing (apt-get install rabbitmq-server)")
        home = workdir / "home"
        home.mkdir(parents=True)
        cookie = home / ".erlang.cookie"  # shared by both nodes and rabbitmqctl
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        plugins = workdir / "enabled_plugins"
        plugins.write_text("[rabbitmq_mqtt].\n")
        env_file = workdir / "rabbitmq-env.conf"  # instead of /etc/rabbitmq/rabbitmq-env.conf
        env_file.write_text("")
        self.epmd_port = free_port()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
               "LANG": "C.UTF-8", "ERL_EPMD_PORT": str(self.epmd_port),
               "ERL_EPMD_ADDRESS": "127.0.0.1", "RABBITMQ_CONF_ENV_FILE": str(env_file),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
               "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS":
                   "-kernel inet_dist_use_interface {127,0,0,1}"}
        self.a = RabbitNode("fleet-a", workdir / "a", env)
        self.b = RabbitNode("fleet-b", workdir / "b", env)
        self.receiver = self.a.mqtt
        self._env = env

    def start(self) -> None:
        self.a.start()
        self.b.start()
        self.a.wait()
        self.b.wait()
        self.b.ctl("stop_app")
        self.b.ctl("join_cluster", self.a.node)
        self.b.ctl("start_app")
        self.b.wait()
        if self.mirrored:  # the receiver's queue gets a copy on every node
            self.a.ctl("set_policy", "--apply-to", "queues", "receiver-mirrored",
                       "^mqtt-subscription-", '{"ha-mode":"all","ha-sync-mode":"automatic"}')

    def stop(self) -> None:
        self.b.stop()
        self.a.stop()
        epmd = shutil.which("epmd")
        if epmd:  # erl started a private epmd on our port; it outlives the nodes
            subprocess.run([epmd, "-port", str(self.epmd_port), "-kill"], env=self._env,
                           capture_output=True, timeout=10, check=False)

    def agent_endpoints(self) -> list[Endpoint]:
        return [self.a.mqtt, self.b.mqtt]

    def restarts(self) -> list[Restart]:
        """A rolling restart, as for an upgrade: node b, then node a (the receiver's)."""
        return [Restart(f"node {label} restart", node.mqtt, node.stop, node.boot)
                for label, node in (("b", self.b), ("a", self.a))]

    def pids(self) -> dict[str, int | None]:
        return {"node a": self.a.pid, "node b": self.b.pid}

    def status_endpoints(self) -> dict[str, Endpoint]:
        return {"node a": self.a.mqtt, "node b": self.b.mqtt}

    def describe(self) -> str:
        queue = "mirrored (ha-mode all)" if self.mirrored else "classic, on node a"
        return f"RabbitMQ 3.10 two-node cluster, MQTT plugin, MQTT 3.1.1; receiver queue {queue}"


def child_pid(parent: int, comm: str) -> int | None:
    """A direct child of ``parent`` named ``comm``, from /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.find("(") + 1:stat.rfind(")")]
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        if ppid == parent and name == comm:
            return int(entry.name)
    return None


def wait_listening(endpoint: Endpoint, timeout_s: float) -> float | None:
    """Poll until the endpoint accepts TCP; returns the monotonic time it did, or None."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if listening(endpoint):
            return time.monotonic()
        time.sleep(0.02)
    return None


def retained_statuses(endpoints: dict[str, Endpoint],
                      devices: list[str]) -> dict[str, tuple[int, int]]:
    """What a dashboard connecting now would see: the retained ``status`` of every box.

    One exact topic per box, no wildcard: RabbitMQ 3.10 sends retained messages only
    for subscriptions without wildcards (Mosquitto for both).
    """
    return {label: _retained_at(label, endpoint, devices)
            for label, endpoint in endpoints.items()}


def _retained_at(label: str, endpoint: Endpoint, devices: list[str]) -> tuple[int, int]:
    """(retained statuses, of which ``online``) after every SUBACK, once quiet for 2 s."""
    retained: dict[str, bytes] = {}
    subacks: list[int] = []
    last = [time.monotonic()]

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        if message.retain:
            retained[message.topic] = message.payload
            last[0] = time.monotonic()

    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311,
                         client_id=f"fleet-probe-{label.replace(' ', '-')}")
    client.on_message = on_message
    client.on_subscribe = lambda c, u, mid, codes, p: subacks.append(mid)
    client.connect(endpoint.host, endpoint.port)
    client.loop_start()
    chunks = range(0, len(devices), 50)
    for start in chunks:
        client.subscribe([(f"{TOPIC_PREFIX}/{d}/status", 1) for d in devices[start:start + 50]])
    wait_until(lambda: len(subacks) == len(chunks) and time.monotonic() - last[0] > 2.0, 60)
    client.disconnect()
    client.loop_stop()
    return len(retained), sum(1 for p in retained.values() if p == b"online")


def accepts_new_client(endpoint: Endpoint, timeout_s: float = 5.0) -> bool:
    """Does a broker accept a new MQTT 3.1.1 connection right now?"""
    accepted = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311,
                         client_id="fleet-probe-connect")
    client.on_connect = lambda c, u, f, reason, p: (
        None if reason.is_failure else accepted.set())
    try:
        client.connect(endpoint.host, endpoint.port)
    except OSError:
        return False
    client.loop_start()
    ok = accepted.wait(timeout_s)
    client.disconnect()
    client.loop_stop()
    return ok
