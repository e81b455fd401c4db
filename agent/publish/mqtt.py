"""One MQTT connection (paho-mqtt 2.x), made fresh for every connect attempt.

A new paho client per connection means no message queued by a previous
connection is ever retransmitted behind our back: the outbox is the only
source of truth for what still needs sending, so ordering and the
duplicate rule ("only where a PUBACK was lost") stay ours to guarantee.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
from collections.abc import Callable
from types import MappingProxyType
from typing import NamedTuple

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.config.mqtt import MqttConfig
from agent.errors import PublishError

log = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"
SESSION_TAKEN_OVER = 0x8E
"""MQTT 5 DISCONNECT reason: another connection took this client id."""
PACKET_TOO_LARGE = 0x95
"""Mosquitto's PUBACK reason for a message over its ``message_size_limit``."""


def _accept_packet_too_large_in_puback() -> None:
    """Let paho read Mosquitto's PUBACK 0x95 instead of dropping the connection.

    MQTT 5 lists 0x95 for CONNACK and DISCONNECT only; Mosquitto (2.0) also answers a
    PUBLISH over ``message_size_limit`` with it, and paho then calls the PUBACK malformed
    and disconnects ("Protocol error"). The refused message came first again after every
    reconnect: a disconnect loop in which nothing behind it was delivered. Read as a
    refusal, it lets the forwarder split the batch (agent/publish/refusals.py).
    """
    names = dict(ReasonCode.names)
    names[PACKET_TOO_LARGE] = {
        name: sorted({*packets, PacketTypes.PUBACK})
        for name, packets in names[PACKET_TOO_LARGE].items()}
    ReasonCode.names = MappingProxyType(names)


_accept_packet_too_large_in_puback()


class Ack(NamedTuple):
    """The broker's answer to one QoS 1 message (MQTT 3.1.1: always success, code 0)."""

    mid: int
    code: int
    """MQTT 5 reason code; 0x80 and above is a refusal."""
    reason: str

    @property
    def accepted(self) -> bool:
        return self.code < 0x80


class MqttSession:
    """Connect, publish with QoS 1, report PUBACKs; reconnecting is the caller's job."""

    def __init__(self, config: MqttConfig, client_id: str, status_topic: str,
                 on_event: Callable[[], None] = lambda: None) -> None:
        self._config = config
        self._status_topic = status_topic
        self._on_event = on_event
        self._connected = threading.Event()
        self._closed = threading.Event()
        self._connect_result: str = ""
        self.max_packet_bytes: int | None = None
        """The broker's Maximum Packet Size (MQTT 5 CONNACK), when it sets one."""
        self.dropped = False
        """The connection ended from the broker's side (or the network's), not ours."""
        self.taken_over = False
        """The broker said it closed this connection because another client connected
        with the same client id (MQTT 5 reason 0x8E; Mosquitto 2.0 just closes it)."""
        self.acks: queue.SimpleQueue[Ack] = queue.SimpleQueue()
        v5 = config.protocol == "5"
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else True, reconnect_on_failure=False)
        self._client.max_inflight_messages_set(config.max_inflight + 2)
        self._client.will_set(status_topic, OFFLINE, qos=1, retain=True)
        if config.username is not None:
            try:
                password = config.password()
            except OSError as exc:  # e.g. the file is not readable by the service user
                raise PublishError(f"password_file: {exc}") from exc
            self._client.username_pw_set(config.username, password)
        if config.tls is not None:
            tls = config.tls
            try:
                self._client.tls_set(
                    ca_certs=str(tls.ca_file) if tls.ca_file else None,
                    certfile=str(tls.cert_file) if tls.cert_file else None,
                    keyfile=str(tls.key_file) if tls.key_file else None,
                    cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            except (OSError, ssl.SSLError, ValueError) as exc:  # unreadable or bad PEM files
                raise PublishError(f"TLS setup: {exc}") from exc
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_publish = self._handle_publish

    @property
    def connected(self) -> bool:
        return self._connected.is_set() and not self._closed.is_set()

    def connect(self, timeout_s: float = 10.0) -> None:
        """Open the connection and wait for CONNACK, then announce ``online`` (retained)."""
        try:
            self._client.connect(self._config.host, self._config.port,
                                 keepalive=self._config.keepalive_s)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise PublishError(f"{self._config.host}:{self._config.port}: {exc}") from exc
        self._client.loop_start()
        woken = self._connected.wait(timeout_s)
        if woken and not self._closed.is_set():
            self._client.publish(self._status_topic, ONLINE, qos=1, retain=True)
            return
        # A refusing CONNACK or a close before one say why; a timeout does not.
        reason = (self._connect_result or "closed") if woken else "no CONNACK in time"
        self.close()
        raise PublishError(f"{self._config.host}:{self._config.port}: {reason}")

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """Queue a QoS 1 message; returns its message id for matching the PUBACK."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._closed.set()
            raise PublishError(f"publish refused locally: {paho.error_string(info.rc)}")
        return info.mid

    def publish_confirmed(self, topic: str, payload: bytes, *, retain: bool,
                          timeout_s: float) -> bool:
        """Publish (QoS 1) and wait for the PUBACK; False when none came in time."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:  # refused locally, or disconnected
            log.info("%s not confirmed: %s", topic, exc)
            return False
        return info.is_published()

    def announce_offline(self, timeout_s: float) -> None:
        """Graceful goodbye: the Last Will only fires on an unclean disconnect."""
        if not self.connected:
            return
        info = self._client.publish(self._status_topic, OFFLINE, qos=1, retain=True)
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:
            log.info("offline status not confirmed: %s", exc)

    def abort(self) -> None:
        """Drop the TCP connection without DISCONNECT: the broker publishes the Last Will.

        For failures of the agent itself, where a clean goodbye would leave the
        retained status saying ``online`` over a box that delivers nothing.
        """
        self._closed.set()
        sock = self._client.socket()
        if isinstance(sock, socket.socket):  # TCP or TLS (no websockets here)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError as exc:  # already gone: nothing left to drop
                log.debug("abort: %s", exc)
        self._client.loop_stop()

    def close(self) -> None:
        self._closed.set()
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    # -- paho callbacks (network thread) ------------------------------------------

    def _handle_connect(self, client: paho.Client, userdata: object,
                        flags: paho.ConnectFlags, reason: ReasonCode,
                        properties: Properties | None) -> None:
        if reason.is_failure:
            self._connect_result = f"connection refused: {reason}"
            self._closed.set()
        else:
            log.info("connected to %s:%d", self._config.host, self._config.port)
            self.max_packet_bytes = getattr(properties, "MaximumPacketSize", None)
        self._connected.set()
        self._on_event()

    def _handle_disconnect(self, client: paho.Client, userdata: object,
                           flags: paho.DisconnectFlags, reason: ReasonCode,
                           properties: Properties | None) -> None:
        if not self._connected.is_set():  # before CONNACK: a TLS certificate refused...
            self._connect_result = f"connection closed before CONNACK: {reason}"
        elif not self._closed.is_set():
            self.dropped = True
            self.taken_over = reason.value == SESSION_TAKEN_OVER
            log.warning("disconnected from broker: %s", reason)
        self._closed.set()
        self._connected.set()  # connect() fails now with the reason, not after its timeout
        self._on_event()

    def _handle_publish(self, client: paho.Client, userdata: object, mid: int,
                        reason: ReasonCode, properties: Properties | None) -> None:
        self.acks.put(Ack(mid, reason.value, reason.getName()))
        self._on_event()
