"""Configuration: one TOML file, validated completely before anything is opened.

Every mistake is reported with the file, the key path and the reason, all at
once, so an installer fixes a config in one round rather than many.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.config.camera import CameraConfig
from agent.config.errors import problems_from
from agent.config.health import HealthConfig
from agent.config.location import LocationConfig
from agent.config.mqtt import OWNER_ONLY_SECRETS, ConfigWarning, MqttConfig
from agent.config.profiles import Profile, all_profiles
from agent.config.sensors import RESERVED_ID, SENSOR_ID, ResolvedSensor, SensorConfig
from agent.config.sinks import SinksConfig
from agent.config.status import StatusConfig
from agent.config.storage import StorageConfig
from agent.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/lokaalmeten/agent.toml")
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # \Z: `$` allows "x\n"

__all__ = ["DEFAULT_CONFIG_PATH", "AgentConfig", "ResolvedSensor", "load_config", "parse_config"]


class AgentConfig(BaseModel):
    """The whole agent configuration file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: str = Field(description="Unique box name; appears in every topic and message.")
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    location: LocationConfig | None = Field(default=None, description="Where the box stands "
                                            "(sent in its retained birth message).")
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    status: StatusConfig = Field(default_factory=StatusConfig)
    sinks: SinksConfig = Field(default_factory=SinksConfig, description="Where measurements "
                               "go besides MQTT (Sensor.Community).")
    sensors: dict[str, SensorConfig] = Field(default_factory=dict)
    cameras: dict[str, CameraConfig] = Field(
        default_factory=dict, description="People counters, one per camera; the id is the "
        "'sensor' of their measurements.")

    def sha256(self) -> str:
        """Hash of the effective configuration: every setting with its default filled in, so
        comments and layout do not change it (it holds file paths, never a secret)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True,
                               separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @field_validator("device_id")
    @classmethod
    def _device_id_is_topic_safe(cls, value: str) -> str:
        if not _DEVICE_ID.match(value):
            raise ValueError("use 1-64 letters, digits, '.', '_' or '-' (it becomes a topic level)")
        return value

    @field_validator("sensors")
    @classmethod
    def _sensor_ids(cls, value: dict[str, SensorConfig]) -> dict[str, SensorConfig]:
        bad = [name for name in value if not SENSOR_ID.match(name) or name == RESERVED_ID]
        if bad:
            raise ValueError(f"sensor ids {bad} must be 1-32 of a-z, 0-9, '_' or '-' "
                             f"(and not {RESERVED_ID!r}: the heartbeat's own id)")
        return value

    @field_validator("cameras")
    @classmethod
    def _camera_ids(cls, value: dict[str, CameraConfig]) -> dict[str, CameraConfig]:
        bad = [name for name in value if not SENSOR_ID.match(name) or name == RESERVED_ID]
        if bad:
            raise ValueError(f"camera ids {bad} must be 1-32 of a-z, 0-9, '_' or '-' "
                             f"(and not {RESERVED_ID!r}: the heartbeat's own id)")
        return value

    @model_validator(mode="after")
    def _camera_ids_are_not_sensor_ids(self) -> AgentConfig:
        clash = sorted(set(self.cameras) & set(self.sensors))
        if clash:
            raise ValueError(f"cameras {clash} use the id of a sensor; ids must be unique "
                             "(they name the 'sensor' of every measurement)")
        return self

    @model_validator(mode="after")
    def _humidity_sources_exist(self, info: ValidationInfo) -> AgentConfig:
        profiles: dict[str, Profile] = (info.context or {}).get("profiles", {})
        problems = []
        for sensor_id, sensor in self.sensors.items():
            if sensor.humidity is None:
                continue
            source = self.sensors.get(sensor.humidity.source)
            if source is None or not source.enabled:
                problems.append(f"sensors.{sensor_id}.humidity.source: no enabled sensor "
                                f"{sensor.humidity.source!r}")
            elif source.model in profiles and "relative_humidity" not in {
                    q.name for q in profiles[source.model].quantities}:
                problems.append(f"sensors.{sensor_id}.humidity.source: "
                                f"{sensor.humidity.source!r} ({source.model}) does not "
                                "measure relative_humidity")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def warnings(self) -> list[ConfigWarning]:
        """Accepted but risky settings: ``check-config`` prints them, the daemon logs them."""
        return self.mqtt.warnings() + self.status.warnings() + \
            self.sinks.warnings(self.resolved_sensors())

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"lokaalmeten-{self.device_id}"

    def resolved_sensors(self, profiles: dict[str, Profile] | None = None) -> list[ResolvedSensor]:
        """Enabled sensors with every default filled in from their profiles."""
        profiles = profiles or all_profiles()
        return [ResolvedSensor.resolve(sensor_id, sensor, profiles[sensor.model])
                for sensor_id, sensor in self.sensors.items() if sensor.enabled]


def parse_config(text: str, source: str, profiles: dict[str, Profile] | None = None, *,
                 owner_only_secrets: bool = False) -> AgentConfig:
    """Validate TOML text; ``source`` names the file in error messages.

    ``owner_only_secrets``: checked by someone other than the agent's user (see
    :data:`agent.config.mqtt.OWNER_ONLY_SECRETS`).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [("", f"not valid TOML: {exc}")]) from exc
    context = {"profiles": profiles if profiles is not None else all_profiles(),
               OWNER_ONLY_SECRETS: owner_only_secrets}
    try:
        return AgentConfig.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(source, problems_from(exc)) from exc


def load_config(path: Path, *, owner_only_secrets: bool = False) -> AgentConfig:
    """Read and validate a config file, or raise :class:`ConfigError` naming it."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), [("", f"cannot read: {exc.strerror or exc}")]) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(str(path), [("", f"not valid UTF-8: byte 0x{raw[exc.start]:02x} on "
                                           f"line {line} (save the file as UTF-8)")]) from exc
    return parse_config(text, str(path), owner_only_secrets=owner_only_secrets)
