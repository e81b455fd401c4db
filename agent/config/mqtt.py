"""The ``[mqtt]`` section: where measurements go and how the agent proves who it is."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, FilePath, field_validator, model_validator

_TOPIC_FORBIDDEN = set("#+\0")


class TlsConfig(BaseModel):
    """TLS towards the broker; a client certificate is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: FilePath | None = Field(
        default=None, description="CA bundle that signed the broker's certificate; "
        "omit to use the system trust store.")
    cert_file: FilePath | None = Field(default=None, description="Client certificate (PEM).")
    key_file: FilePath | None = Field(default=None, description="Client private key (PEM).")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class MqttConfig(BaseModel):
    """Broker connection, identity, topics and delivery pacing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="localhost", min_length=1, description="Broker host name or IP.")
    port: int = Field(default=1883, ge=1, le=65535, description="1883 plain, 8883 TLS.")
    protocol: Literal["3.1.1", "5"] = Field(default="5", description="MQTT protocol version.")
    client_id: str | None = Field(
        default=None, max_length=64, description="Defaults to lokaalmeten-<device_id>.")
    keepalive_s: int = Field(default=60, ge=5, le=3600, description="MQTT keep-alive.")
    topic_prefix: str = Field(default="lokaalmeten", min_length=1,
                              description="Topics are <prefix>/<device_id>/<kind>.")
    username: str | None = None
    password_file: FilePath | None = Field(
        default=None, description="File holding the password (kept out of the config).")
    tls: TlsConfig | None = None
    max_batch: int = Field(default=200, ge=1, le=5000,
                           description="Most measurements in one message (backlog drains).")
    max_inflight: int = Field(default=10, ge=1, le=100,
                              description="Messages awaiting PUBACK at once.")
    reconnect_min_s: float = Field(default=1.0, gt=0, description="First reconnect backoff cap.")
    reconnect_max_s: float = Field(default=300.0, gt=0, description="Largest reconnect backoff.")
    first_connect_jitter_s: float = Field(
        default=10.0, ge=0, description="Random delay before the first connect, so a fleet "
        "powering up together after an outage does not hit the broker at once.")

    @field_validator("topic_prefix")
    @classmethod
    def _plain_topic(cls, value: str) -> str:
        if _TOPIC_FORBIDDEN & set(value) or value.startswith("/") or value.endswith("/"):
            raise ValueError("must not contain # + or NUL, nor start or end with /")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file needs a username")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        return self

    def password(self) -> str | None:
        """Read the password at connect time, so rotating the file needs no restart."""
        if self.password_file is None:
            return None
        return Path(self.password_file).read_text(encoding="utf-8").strip()
