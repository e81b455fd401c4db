"""The ``[mqtt.home_assistant]`` section: announce the sensors to Home Assistant.

Opt-in. When present, the MQTT sink also publishes, on the same connection, a retained
discovery config per (sensor, quantity) under ``discovery_prefix`` and each quantity's
latest window on a retained state topic of its own (docs/home-assistant.md). It lives
under ``[mqtt]`` because it is the same broker and the same Last Will: Home Assistant
marks the entities unavailable when the agent's status topic says ``offline``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.config.sensors import SensorConfig

DISCOVERY_PREFIX_MAX_BYTES = 64


class HomeAssistantConfig(BaseModel):
    """MQTT discovery for Home Assistant (its MQTT integration, discovery on)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="false keeps the section but announces "
                          "nothing, and removes the entities this box announced before.")
    discovery_prefix: str = Field(
        default="homeassistant", min_length=1, description="Home Assistant's discovery "
        "prefix (its MQTT integration's setting; 'homeassistant' unless changed there).")
    sensors: list[str] | None = Field(
        default=None, description="Ids of the sensors to announce; default every enabled "
        "sensor. A sensor that leaves this list (or the config) is removed from Home "
        "Assistant.")

    @field_validator("discovery_prefix")
    @classmethod
    def _plain_prefix(cls, value: str) -> str:
        if len(value.encode()) > DISCOVERY_PREFIX_MAX_BYTES:
            raise ValueError(f"at most {DISCOVERY_PREFIX_MAX_BYTES} bytes of UTF-8")
        if any(c in value for c in "+#$") or "" in value.split("/") or not value.isprintable():
            raise ValueError("must be a plain topic: no '+', '#', '$', control characters or "
                             "empty levels (leading, trailing or double '/')")
        return value

    def announced(self, enabled: list[str]) -> list[str]:
        """Which of the ``enabled`` sensor ids to announce (none when disabled)."""
        if not self.enabled:
            return []
        return [s for s in enabled if self.sensors is None or s in self.sensors]

    def problems(self, sensors: dict[str, SensorConfig]) -> list[tuple[str, str]]:
        """Named sensors that do not exist or are disabled (only the whole config shows)."""
        if self.sensors is None:
            return []
        found = []
        for index, sensor_id in enumerate(self.sensors):
            sensor = sensors.get(sensor_id)
            if sensor is None or not sensor.enabled:
                found.append((f"mqtt.home_assistant.sensors[{index}]",
                              f"no enabled sensor {sensor_id!r}"))
            elif sensor_id in self.sensors[:index]:
                found.append((f"mqtt.home_assistant.sensors[{index}]",
                              f"{sensor_id!r} is listed twice"))
        return found
