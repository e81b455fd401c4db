"""Firmware profiles: one declarative TOML file per supported sensor model.

A profile holds what is true of every unit of a model (bus, default address
or baud rate, timings, and per quantity: UCUM unit, valid range, resolution,
Sensor.Community value name). The config names a sensor by its profile and
overrides only what differs on that box.
"""

from __future__ import annotations

import os
import tomllib
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.config.errors import problems_from
from agent.errors import ConfigError

PROFILES_ENV = "LOKAALMETEN_PROFILES"


class OutOfRange(StrEnum):
    """What the sampler does with a value outside the quantity's valid range."""

    DROP = "drop"
    FLAG = "flag"


class Aggregation(StrEnum):
    """How a window's samples of a quantity become its published value."""

    MEAN = "mean"
    ENERGY_MEAN = "energy_mean"
    """Levels in dB: 10·lg(mean(10^(L/10))); an arithmetic mean of Leq values reads low."""
    MAX = "max"
    """Maxima (LAmax): the window's value is the largest sample."""
    MIN = "min"
    """Minima (LAmin): the window's value is the smallest sample."""


class QuantityProfile(BaseModel):
    """One quantity a sensor model reports."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Snake-case quantity name with no unit, e.g. pm2_5.")
    unit: str = Field(description="UCUM unit string, e.g. ug/m3, Cel, %, hPa, [ppm], dB.")
    min: float = Field(description="Lowest physically valid value.")
    max: float = Field(description="Highest physically valid value.")
    resolution: float = Field(gt=0, description="Smallest step the sensor reports.")
    out_of_range: OutOfRange = OutOfRange.DROP
    aggregation: Aggregation = Field(default=Aggregation.MEAN,
                                     description="How a window's samples are combined.")
    sensor_community: str | None = Field(
        default=None, description="Sensor.Community value_type name (e.g. P2), if any.")
    description: str = ""

    @model_validator(mode="after")
    def _range_is_ordered(self) -> QuantityProfile:
        if self.min >= self.max:
            raise ValueError(f"min {self.min} must be below max {self.max}")
        return self


class Profile(BaseModel):
    """Everything the agent knows about a sensor model before any config is read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="Model name used in configs, e.g. sds011.")
    driver: str | None = Field(
        default=None, description="Registered driver to use when it is not named after the "
        "model: lets a generic driver (e.g. modbus) serve many profiles without code.")
    driver_options: dict[str, Any] = Field(
        default_factory=dict, description="Default driver options for this model; a "
        "sensor's own options table overrides them key by key.")
    name: str = Field(description="Human name with manufacturer.")
    bus: Literal["i2c", "serial", "audio"] = Field(
        description="How the sensor is attached; an audio sensor needs no address or baud.")
    address: int | None = Field(default=None, description="Default 7-bit I2C address.")
    alt_addresses: tuple[int, ...] = Field(default=(), description="Other strap addresses.")
    baudrate: int | None = Field(default=None, description="Default serial bit rate.")
    warmup_s: float = Field(ge=0, description="Readings this soon after start/wake are flagged.")
    min_interval_s: float = Field(gt=0, description="Shortest sensible sampling interval.")
    default_interval_s: float = Field(gt=0, description="Sampling interval when none is set.")
    wake_lead_s: float = Field(default=0, ge=0,
                               description="Wake this long before a duty-cycled reading.")
    sensor_community_pin: int | None = Field(default=None, description="X-Pin header value.")
    datasheet: str = ""
    notes: str = ""
    quantities: tuple[QuantityProfile, ...]

    @model_validator(mode="after")
    def _bus_defaults_present(self) -> Profile:
        if self.bus == "i2c" and self.address is None:
            raise ValueError("an i2c profile needs a default address")
        if self.bus == "serial" and self.baudrate is None:
            raise ValueError("a serial profile needs a default baudrate")
        if self.bus == "audio" and (self.address is not None or self.baudrate is not None):
            raise ValueError("an audio profile has no address or baudrate (the config names "
                             "its capture device)")
        names = [q.name for q in self.quantities]
        if len(set(names)) != len(names):
            raise ValueError("quantity names must be unique")
        return self

    @property
    def driver_name(self) -> str:
        """The registry key of the driver that reads this model."""
        return self.driver or self.model

    def quantity(self, name: str) -> QuantityProfile:
        for quantity in self.quantities:
            if quantity.name == name:
                return quantity
        raise KeyError(f"{self.model} has no quantity {name!r}")


def profiles_dir() -> Path:
    """Where the profiles live: $LOKAALMETEN_PROFILES, the source tree, or the wheel."""
    override = os.environ.get(PROFILES_ENV)
    if override:
        return Path(override)
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "firmware_profiles", package / "firmware_profiles"):
        if candidate.is_dir():
            return candidate
    raise ConfigError(str(package), [("", "firmware_profiles directory not found")])


def load_profile(path: Path) -> Profile:
    """Parse one profile file; errors name the file and key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), [("", str(exc))]) from exc
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(str(path), problems_from(exc)) from exc
    if profile.model != path.stem:
        raise ConfigError(str(path), [("model", f"must match the file name {path.stem!r}")])
    return profile


@cache
def _load_all(directory: Path) -> dict[str, Profile]:
    return {path.stem: load_profile(path) for path in sorted(directory.glob("*.toml"))}


def all_profiles() -> dict[str, Profile]:
    """Every profile by model name (read once per directory)."""
    return _load_all(profiles_dir())
