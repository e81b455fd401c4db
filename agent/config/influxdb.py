"""``[sinks.influxdb]``: write every window to an InfluxDB as line protocol.

InfluxDB 1.x (``POST /write?db=``, what Debian ships and what the tests run) is the
default; ``api = "v2"`` writes to ``/api/v2/write?org=&bucket=`` with a token, the
same lines over a different door. Names that reach the server (measurement, extra
tags) are checked here, so a line the server would misread is a config error, not a
rejected write at run time.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Literal

from pydantic import Field, FilePath, HttpUrl, field_validator, model_validator

from agent.config.delivery import DeliveryConfig
from agent.config.mqtt import ConfigWarning, _exposure, _readable, _unread
from agent.config.sensors import SensorConfig

PLACEHOLDERS = frozenset({"model", "sensor", "device"})
RESERVED_TAGS = frozenset({"device", "sensor", "model"})
"""Tags every point carries: the box, the sensor (or camera) id, the sensor model."""
BATCH_LINES_MAX = 10_000


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a measurement, tag or field key or tag value in line
    protocol (``agent/publish/line_protocol.py`` writes it); None if it can."""
    if not name:
        return "must not be empty"
    if "\n" in name or "\r" in name:
        return "must not contain a line break"
    if name.endswith("\\"):
        return "must not end in a backslash"
    return None


class InfluxDBConfig(DeliveryConfig):
    """Writes windows to InfluxDB: one point per sensor and window, a field per quantity."""

    url: HttpUrl = Field(description="The server, e.g. http://influx.local:8086 (a path "
                         "prefix is kept: behind a proxy, http://host/influx).")
    api: Literal["v1", "v2"] = Field(default="v1", description="v1: /write?db= (InfluxDB "
                                     "1.x); v2: /api/v2/write?org=&bucket= (InfluxDB 2.x).")
    database: str | None = Field(default=None, description="v1: the database (it must "
                                 "exist: CREATE DATABASE lokaalmeten).")
    retention_policy: str | None = Field(default=None, description="v1: the retention "
                                         "policy; default the database's default.")
    username: str | None = Field(default=None, description="v1: user (HTTP Basic auth).")
    password_file: FilePath | None = Field(default=None, description="v1: file holding the "
                                           "password (kept out of the config).")
    org: str | None = Field(default=None, description="v2: the organisation.")
    bucket: str | None = Field(default=None, description="v2: the bucket.")
    token_file: FilePath | None = Field(default=None, description="v2: file holding an API "
                                        "token with write access to the bucket.")
    precision: Literal["s", "ms", "us", "ns"] = Field(
        default="ms", description="Timestamp precision; ms keeps the window end exact, s "
        "rounds it down to the second.")
    measurement: str = Field(default="{model}", description="Measurement name; {model}, "
                             "{sensor} and {device} are replaced (default: one measurement "
                             "per sensor model, e.g. sds011).")
    sensors: list[str] | None = Field(default=None, description="Ids of the sensors and "
                                      "cameras to write; default every enabled one.")
    health: bool = Field(default=False, description="Write the box's health values too "
                         "(heartbeat, per-sensor counters) as measurement 'health'.")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags on every "
                                 "point, e.g. {site = \"Utrecht Noord\"}.")
    batch_lines: int = Field(default=5000, ge=1, le=BATCH_LINES_MAX, description="Points "
                             "per write at most (InfluxDB advises about 5000).")

    _secrets_readable = field_validator("password_file", "token_file")(_readable)

    @field_validator("measurement")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ValueError(f"not a valid template ({exc})") from exc
        unknown = sorted(names - PLACEHOLDERS)
        if unknown:
            raise ValueError(f"unknown placeholder(s) {unknown}; use {sorted(PLACEHOLDERS)}")
        try:
            sample = value.format(model="m", sensor="s", device="d")
        except (ValueError, IndexError) as exc:
            raise ValueError(f"not a valid template ({exc})") from exc
        problem = name_problem(sample)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        problems = []
        for key, text in value.items():
            if key in RESERVED_TAGS or key.startswith("_") or key == "time":
                problems.append(f"tag {key!r} is reserved (device, sensor, model, time, _*)")
            for what, name in (("key", key), ("value", text)):
                problem = name_problem(name)
                if problem is not None:
                    problems.append(f"tag {what} {name!r} {problem}")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _target(self) -> InfluxDBConfig:
        v1 = {"database": self.database, "retention_policy": self.retention_policy,
              "username": self.username, "password_file": self.password_file}
        v2 = {"org": self.org, "bucket": self.bucket, "token_file": self.token_file}
        own, other = (v1, v2) if self.api == "v1" else (v2, v1)
        stray = sorted(k for k, v in other.items() if v is not None)
        if stray:
            raise ValueError(f"{', '.join(stray)} belong(s) to the other api; "
                             f"api = {self.api!r} uses {', '.join(own)}")
        needed = ["database"] if self.api == "v1" else ["org", "bucket", "token_file"]
        missing = [k for k in needed if own[k] is None]
        if missing:
            raise ValueError(f"api = {self.api!r} needs {', '.join(missing)}")
        if (self.username is None) != (self.password_file is None):
            raise ValueError("username and password_file go together")
        return self

    def secret(self) -> str | None:
        """The password (v1) or token (v2), read at each write so a rotated file counts."""
        path = self.password_file or self.token_file
        return None if path is None else Path(path).read_text(encoding="utf-8").strip()

    def problems(self, sensors: dict[str, SensorConfig], cameras: set[str]
                 ) -> list[tuple[str, str]]:
        """Sensors the config does not have."""
        return [(f"sinks.influxdb.sensors[{index}]", f"no enabled sensor or camera {name!r}")
                for index, name in enumerate(self.sensors or ())
                if name not in cameras and (name not in sensors or not sensors[name].enabled)]

    def warnings(self) -> list[ConfigWarning]:
        found: list[ConfigWarning] = []
        for key, path in (("password_file", self.password_file),
                          ("token_file", self.token_file)):
            found += _exposure(f"sinks.influxdb.{key}", path)
            found += _unread(f"sinks.influxdb.{key}", path)
        if self.url.scheme == "http" and (self.password_file or self.token_file) and \
                self.url.host not in ("localhost", "127.0.0.1", "::1"):
            found.append(("sinks.influxdb.url", "the InfluxDB credentials cross the network "
                          "in clear text (http://); use https://"))
        return found
