"""``[sinks.sensorthings]``: an OGC SensorThings API v1.1 server (FROST, RIVM Samen
Meten style) gets one Thing per box, a Datastream per sensor quantity, and an
Observation per window.

The server is named by its service root, the URL that lists the entity sets (FROST:
``http://host:8080/FROST-Server/v1.1``). ``lokaalmeten sensorthings provision`` and the
sink itself create what is missing there (idempotent: found again by ``properties``),
so the only things a person sets up on the server are the server and, if it wants one,
an account.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, FilePath, HttpUrl, field_validator, model_validator

from agent.config.delivery import DeliveryConfig
from agent.config.location import LocationConfig
from agent.config.mqtt import ConfigWarning, _exposure, _readable, _unread
from agent.config.sensors import SensorConfig

BATCH_ROWS_MAX = 10_000


class SensorThingsConfig(DeliveryConfig):
    """Posts each window as an Observation to its Datastream on a SensorThings server."""

    url: HttpUrl = Field(description="The service root with its version, e.g. "
                         "http://frost.local:8080/FROST-Server/v1.1.")
    username: str | None = Field(default=None, description="User (HTTP Basic auth), if "
                                 "the server asks for one.")
    password_file: FilePath | None = Field(default=None, description="File holding the "
                                           "password (kept out of the config).")
    sensors: list[str] | None = Field(default=None, description="Ids of the sensors whose "
                                      "quantities become Datastreams; default every "
                                      "enabled sensor.")
    observed_property_base: str = Field(
        default="urn:lokaalmeten:quantity:", min_length=1, description="ObservedProperty "
        "definitions are this plus the quantity name (pm2_5); point it at your own "
        "vocabulary if the server's other Things use one.")
    batch_rows: int = Field(default=500, ge=1, le=BATCH_ROWS_MAX, description="Outbox rows "
                            "read at a time; each is one Observation POST.")
    pause_between_pushes_s: float = Field(
        default=0.0, ge=0, le=3600, description="Pause after each Observation while a "
        "backlog drains (each POST is one window of one quantity, so the default sends "
        "them back to back, one at a time).")

    _secret_readable = field_validator("password_file")(_readable)

    @model_validator(mode="after")
    def _credentials_pair(self) -> SensorThingsConfig:
        if (self.username is None) != (self.password_file is None):
            raise ValueError("username and password_file go together")
        return self

    def secret(self) -> str | None:
        """The password, read at each request so a rotated file counts."""
        path = self.password_file
        return None if path is None else Path(path).read_text(encoding="utf-8").strip()

    def problems(self, sensors: dict[str, SensorConfig], location: LocationConfig | None
                 ) -> list[tuple[str, str]]:
        """A Thing needs a Location (a server makes each Observation's
        FeatureOfInterest from it; FROST refuses Observations without one), and every
        named sensor must exist."""
        found = [(f"sinks.sensorthings.sensors[{index}]", f"no enabled sensor {name!r}")
                 for index, name in enumerate(self.sensors or ())
                 if name not in sensors or not sensors[name].enabled]
        if location is None:
            found.append(("sinks.sensorthings", "needs a [location] table (latitude, "
                          "longitude): the server places the box's Thing there and derives "
                          "each Observation's FeatureOfInterest from it"))
        return found

    def warnings(self) -> list[ConfigWarning]:
        found = _exposure("sinks.sensorthings.password_file", self.password_file) + \
            _unread("sinks.sensorthings.password_file", self.password_file)
        if self.url.scheme == "http" and self.password_file and \
                self.url.host not in ("localhost", "127.0.0.1", "::1"):
            found.append(("sinks.sensorthings.url", "the SensorThings password crosses the "
                          "network in clear text (http://); use https://"))
        return found
