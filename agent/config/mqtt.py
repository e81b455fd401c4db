"""The ``[mqtt]`` section: where measurements go and how the agent proves who it is."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.config.homeassistant import HomeAssistantConfig

TOPIC_PREFIX_MAX_BYTES = 256
"""MQTT allows 65 535-byte topics, but every message carries its topic and some brokers
cap topics far lower; a prefix this long is a mistake, not a naming scheme."""

ConfigWarning = tuple[str, str]
"""(key path, reason): accepted, but worth an operator's attention."""

OWNER_ONLY_SECRETS = "owner_only_secrets"
"""Validation context flag for ``check-config`` run by an administrator: a file that only
its owner (the agent's user) may read is accepted unread, with a warning. The agent
itself validates without it, so it still refuses to start on a secret it cannot read."""


def _readable(path: Path | None, info: ValidationInfo) -> Path | None:
    """Open the file as the checking user would at connect time: an unreadable secret
    found by ``check-config`` (run as the service user) is a config error, not a retry loop."""
    if path is not None:
        try:
            with Path(path).open("rb") as handle:
                handle.read(1)
        except PermissionError as exc:
            if not (info.context or {}).get(OWNER_ONLY_SECRETS) or not _owners_only(path):
                raise ValueError(f"cannot read: {exc.strerror or exc}") from exc
        except OSError as exc:
            raise ValueError(f"cannot read: {exc.strerror or exc}") from exc
    return path


def _owners_only(path: Path) -> bool:
    """Readable by its owner, and that owner is someone else (mode 600, owner lokaalmeten)."""
    info = os.stat(path)
    return info.st_uid != os.geteuid() and bool(info.st_mode & stat.S_IRUSR)


def _unread(key: str, path: Path | None) -> list[ConfigWarning]:
    """What :data:`OWNER_ONLY_SECRETS` let through: the owner has to be the agent's user."""
    if path is None or os.access(path, os.R_OK):
        return []
    uid = os.stat(path).st_uid
    try:
        owner = pwd.getpwuid(uid).pw_name
    except KeyError:
        owner = str(uid)
    return [(key, f"{path} is readable only by its owner {owner!r}, not by you: not checked "
                  "(the agent checks it when it starts; it must run as that user)")]


def _exposure(key: str, path: Path | None) -> list[ConfigWarning]:
    """A secret readable by group or others is one ``chmod 600`` away from being private."""
    if path is None:
        return []
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o044:
        return [(key, f"{path} is readable by group or others (mode {mode:04o}); "
                      "chmod 600 it and make the service user its owner")]
    return []


class TlsConfig(BaseModel):
    """TLS towards the broker; a client certificate is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: FilePath | None = Field(
        default=None, description="CA bundle that signed the broker's certificate; "
        "omit to use the system trust store.")
    cert_file: FilePath | None = Field(default=None, description="Client certificate (PEM).")
    key_file: FilePath | None = Field(default=None, description="Client private key (PEM).")

    _files_readable = field_validator("ca_file", "cert_file", "key_file")(_readable)

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class MqttConfig(BaseModel):
    """Broker connection, identity, topics and delivery pacing."""

    # inf/nan or absurd delays end in ``Event.wait`` raising OverflowError in the forwarder.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    host: str = Field(default="localhost", min_length=1, description="Broker host name or IP.")
    port: int = Field(default=1883, ge=1, le=65535, description="1883 plain, 8883 TLS.")
    protocol: Literal["3.1.1", "5"] = Field(default="5", description="MQTT protocol version.")
    client_id: str | None = Field(
        default=None, max_length=64, description="Defaults to lokaalmeten-<device_id>.")
    keepalive_s: int = Field(default=60, ge=5, le=3600, description="MQTT keep-alive.")
    topic_prefix: str = Field(default="lokaalmeten", min_length=1,
                              description="Topics are <prefix>/<device_id>/<kind>.")
    health_topic: bool = Field(default=True, description="The box's health (heartbeat, "
                               "per-sensor counters) on <prefix>/<device_id>/health; false "
                               "keeps it in measurements, as before.")
    username: str | None = None
    password_file: FilePath | None = Field(
        default=None, description="File holding the password (kept out of the config).")
    tls: TlsConfig | None = None
    allow_plaintext_credentials: bool = Field(
        default=False, description="Waive the rule that a username/password needs [mqtt.tls] "
        "(a broker on the same host or a trusted LAN); the password then crosses the network "
        "in clear text and every start logs a warning.")
    max_batch: int = Field(default=200, ge=1, le=5000,
                           description="Most measurements in one message (backlog drains).")
    max_message_bytes: int = Field(
        default=131_072, ge=1024, le=268_435_455, description="Largest message payload; "
        "batches are split below it, and below the broker's own limit when it announces "
        "one (MQTT 5). Set it to the broker's message_size_limit on MQTT 3.1.1, where a "
        "broker may acknowledge and then discard a message that is too large.")
    max_inflight: int = Field(default=10, ge=1, le=100,
                              description="Messages awaiting PUBACK at once.")
    poison_after_rejections: int = Field(
        default=5, ge=2, le=1000, description="MQTT 5: a message the broker refuses "
        "(reason code: not authorised, payload format invalid, ...) this many times, while it "
        "accepts other messages in between, is set aside in the outbox's poison table so it "
        "no longer blocks the queue. A broker that refuses everything sets nothing aside. "
        "Messages refused as too large are split first.")
    reconnect_min_s: float = Field(default=1.0, gt=0, le=3600,
                                   description="First reconnect backoff cap.")
    reconnect_max_s: float = Field(default=300.0, gt=0, le=3600,
                                   description="Largest reconnect backoff.")
    first_connect_jitter_s: float = Field(
        default=10.0, ge=0, le=3600, description="Random delay before the first connect and "
        "before reconnecting after a connection drops, so a fleet powering up together, or "
        "dropped together by a broker restart, does not hit the broker at once.")
    puback_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="A message without PUBACK for this long "
        "means the broker has stopped acknowledging: reconnect and resend.")
    home_assistant: HomeAssistantConfig | None = Field(
        default=None, description="Announce the sensors to Home Assistant (MQTT discovery) "
        "and publish each quantity's latest value on a retained topic of its own.")

    _password_readable = field_validator("password_file")(_readable)

    @field_validator("topic_prefix")
    @classmethod
    def _plain_topic(cls, value: str) -> str:
        problems = []
        if len(value.encode()) > TOPIC_PREFIX_MAX_BYTES:
            problems.append(f"at most {TOPIC_PREFIX_MAX_BYTES} bytes of UTF-8")
        if value.startswith("$"):
            problems.append("must not start with '$' (reserved for broker topics like $SYS)")
        if "+" in value or "#" in value:
            problems.append("must not contain the wildcard '+' or '#'")
        if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
            problems.append("must not contain a control character (NUL, newline, ...)")
        if "" in value.split("/"):
            problems.append("must not have an empty level (leading, trailing or double '/')")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file needs a username")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        if self.username is not None and self.tls is None \
                and not self.allow_plaintext_credentials:
            raise ValueError("username/password would be sent in clear text: add [mqtt.tls] "
                             "(port 8883), or set allow_plaintext_credentials = true for a "
                             "broker on a trusted network")
        return self

    def warnings(self) -> list[ConfigWarning]:
        """Accepted but risky settings, for ``check-config`` to print and ``run`` to log."""
        found = _exposure("mqtt.password_file", self.password_file)
        found += _unread("mqtt.password_file", self.password_file)
        if self.tls is not None:
            found += _exposure("mqtt.tls.key_file", self.tls.key_file)
            for name in ("ca_file", "cert_file", "key_file"):
                found += _unread(f"mqtt.tls.{name}", getattr(self.tls, name))
        if self.username is not None and self.tls is None:
            found.append(("mqtt.allow_plaintext_credentials", "the MQTT password is sent in "
                          "clear text (no [mqtt.tls]); anyone on the network path can read it"))
        return found

    def password(self) -> str | None:
        """Read the password at connect time, so rotating the file needs no restart."""
        if self.password_file is None:
            return None
        return Path(self.password_file).read_text(encoding="utf-8").strip()
