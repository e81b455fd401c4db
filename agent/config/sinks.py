"""The ``[sinks]`` section: where measurements go besides the MQTT broker.

Each sink reads the outbox at its own pace (a row leaves when every sink has it),
so a sink is configured, never improvised: ``check-config`` verifies that every
sensor it names exists and is one the receiving platform knows.

``[sinks.sensor_community]`` pushes the named sensors to Sensor.Community (the map
and the route into RIVM's Samen Meten). The node id defaults to ``raspi-<CPU
serial>``, the id Sensor.Community's Raspberry Pi clients use; each sensor is one
X-Pin of that node, taken from its model's firmware profile.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from agent.config.delivery import DeliveryConfig
from agent.config.influxdb import InfluxDBConfig
from agent.config.location import LocationConfig
from agent.config.mqtt import ConfigWarning
from agent.config.profiles import Profile
from agent.config.sensors import ResolvedSensor, SensorConfig
from agent.config.sensorthings import SensorThingsConfig

SENSOR_COMMUNITY_URL = "https://api.sensor.community/v1/push-sensor-data/"
NODE_ID = re.compile(r"^[A-Za-z0-9_-]{1,50}\Z")
"""feinstaub-api stores a node's uid in a Django SlugField (max_length 50)."""
SENSOR_COMMUNITY_SEND_INTERVAL_S = 145
"""The airrohr firmware's send interval; Sensor.Community's map expects about that."""
MIN_WINDOW_S = 60
"""Shorter windows of a pushed sensor draw a warning: many more pushes than a node sends."""

Channels = dict[tuple[str, str], tuple[int, str]]
"""(sensor id, quantity) → (X-Pin, Sensor.Community value_type)."""


class SensorCommunityConfig(DeliveryConfig):
    """Pushes to Sensor.Community (``POST /v1/push-sensor-data/``), one X-Pin per sensor."""

    sensors: list[str] = Field(
        min_length=1, description="Ids of the sensors to push, each registered on "
        "devices.sensor.community under this node with its model's pin (PM 1, BMP280 3, "
        "SHT3x 7, BME280 11, noise 15, SCD30 17).")
    node_id: str | None = Field(
        default=None, description="The node's id as registered (the X-Sensor header); "
        "default raspi-<CPU serial> from /proc/cpuinfo.")
    url: HttpUrl = Field(default=HttpUrl(SENSOR_COMMUNITY_URL),
                         description="The push endpoint.")

    @field_validator("node_id")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value is not None and not NODE_ID.match(value):
            raise ValueError("use 1-50 letters, digits, '_' or '-' (as registered)")
        return value

    def problems(self, sensors: dict[str, SensorConfig], profiles: dict[str, Profile]
                 ) -> list[tuple[str, str]]:
        """Mistakes only the whole config shows: unknown sensors, models without a pin,
        two sensors on one pin (the server tells a node's sensors apart by pin only)."""
        found = []
        pins: dict[int, str] = {}
        for index, sensor_id in enumerate(self.sensors):
            key = f"sinks.sensor_community.sensors[{index}]"
            sensor = sensors.get(sensor_id)
            if sensor is None or not sensor.enabled:
                found.append((key, f"no enabled sensor {sensor_id!r}"))
                continue
            pin = profiles[sensor.model].sensor_community_pin
            if pin is None:
                found.append((key, f"{sensor_id!r} ({sensor.model}) has no Sensor.Community "
                                   "sensor type (no X-Pin in its firmware profile)"))
            elif pin in pins:
                found.append((key, f"{sensor_id!r} and {pins[pin]!r} would share X-Pin {pin}; "
                                   "Sensor.Community tells a node's sensors apart by pin"))
            else:
                pins[pin] = sensor_id
        return found

    def warnings(self, sensors: list[ResolvedSensor]) -> list[ConfigWarning]:
        """Windows much shorter than airrohr's send interval mean many small pushes."""
        return [(f"sensors.{s.sensor_id}.window_s", f"pushed to Sensor.Community every "
                 f"{s.window_s:g} s; its nodes send about every "
                 f"{SENSOR_COMMUNITY_SEND_INTERVAL_S} s (a longer window means fewer pushes)")
                for s in sensors
                if s.sensor_id in self.sensors and s.window_s < MIN_WINDOW_S]


class SinksConfig(BaseModel):
    """Sinks besides MQTT; each one that is configured holds rows until it has them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sensor_community: SensorCommunityConfig | None = Field(
        default=None, description="Push the named sensors to Sensor.Community.")
    influxdb: InfluxDBConfig | None = Field(
        default=None, description="Write every window to InfluxDB (line protocol).")
    sensorthings: SensorThingsConfig | None = Field(
        default=None, description="Post every window as an Observation to an OGC "
        "SensorThings API server.")

    def active_sensor_community(self) -> SensorCommunityConfig | None:
        sc = self.sensor_community
        return sc if sc is not None and sc.enabled else None

    def active_influxdb(self) -> InfluxDBConfig | None:
        influx = self.influxdb
        return influx if influx is not None and influx.enabled else None

    def active_sensorthings(self) -> SensorThingsConfig | None:
        sta = self.sensorthings
        return sta if sta is not None and sta.enabled else None

    def problems(self, sensors: dict[str, SensorConfig], profiles: dict[str, Profile],
                 cameras: set[str], location: LocationConfig | None = None
                 ) -> list[tuple[str, str]]:
        sc, influx = self.active_sensor_community(), self.active_influxdb()
        sta = self.active_sensorthings()
        return ([] if sc is None else sc.problems(sensors, profiles)) + \
            ([] if influx is None else influx.problems(sensors, cameras)) + \
            ([] if sta is None else sta.problems(sensors, location))

    def warnings(self, sensors: list[ResolvedSensor]) -> list[ConfigWarning]:
        sc, influx = self.active_sensor_community(), self.active_influxdb()
        sta = self.active_sensorthings()
        return ([] if sc is None else sc.warnings(sensors)) + \
            ([] if influx is None else influx.warnings()) + \
            ([] if sta is None else sta.warnings())


def sensor_community_channels(config: SensorCommunityConfig, sensors: list[ResolvedSensor]
                              ) -> Channels:
    """What each pushed sensor's quantities are called on Sensor.Community, by profile."""
    return {(s.sensor_id, q.name): (s.profile.sensor_community_pin, q.sensor_community)
            for s in sensors if s.sensor_id in config.sensors
            and s.profile.sensor_community_pin is not None
            for q in s.profile.quantities if q.sensor_community is not None}
