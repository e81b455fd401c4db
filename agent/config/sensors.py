"""``[sensors.<id>]`` sections: one per attached sensor, named by its firmware profile.

Only what differs from the profile needs writing: a serial SDS011 needs just
``model`` and ``port``; an SHT31 at the default address needs just ``model``.
Model-specific settings go in ``options`` and are checked against the
driver's own options type when the agent is assembled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from agent.config.profiles import Profile

SENSOR_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}\Z")  # \Z: `$` lets "pm\n" through
DEFAULT_WINDOW_S = 60.0
RESERVED_ID = "agent"
"""The heartbeat's own 'sensor' (``agent.health.heartbeat.AGENT_SENSOR_ID``): a sensor or
camera with this id would mix its figures with the agent's."""


class Calibration(BaseModel):
    """Linear correction ``value * scale + offset`` for one quantity, from a co-location."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    scale: float = Field(default=1.0, gt=0)
    offset: float = 0.0


class HumidityConfig(BaseModel):
    """RH source for an optical PM sensor: flag humid readings, optionally correct them."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    source: str = Field(description="Id of the sensor that reports relative_humidity.")
    threshold_percent: float = Field(default=90.0, gt=0, le=100,
                                     description="Flag PM as high_humidity from this RH.")
    kappa: float | None = Field(
        default=None, gt=0, le=1.5, description="Hygroscopicity for the κ-Köhler "
        "correction; published as <quantity>_rh_corrected next to the raw value. Typical "
        "urban PM2.5: 0.2-0.6; calibrate against a reference where you can.")
    growth: Literal["crilley2018", "volume"] = Field(
        default="crilley2018", description="Growth factor the κ belongs to: crilley2018 "
        "(mass growth with dry density 1.65, Crilley et al. 2018; most published κ for "
        "low-cost sensors) or volume (Petters & Kreidenweis 2007, no density ratio).")


class SensorConfig(BaseModel):
    """One sensor: which model, where it is attached, how often to sample and publish."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    model: str = Field(description="Firmware profile name, e.g. sds011, sht3x, bme280.")
    enabled: bool = True
    interval_s: float | None = Field(
        default=None, gt=0, description="Sampling interval; default from the profile.")
    window_s: float | None = Field(
        default=None, gt=0, description="Aggregation window: publish mean/min/max/n of the "
        "samples in each window. Default 60 s, or the interval when that is longer.")
    warmup_s: float | None = Field(default=None, ge=0,
                                   description="Override the profile's warm-up time.")
    duty_cycle: bool = Field(default=True, description="Let sensors that can sleep between "
                             "readings do so (laser/fan life).")
    port: str | None = Field(default=None, description="Serial port; prefer /dev/serial/by-id/.")
    baudrate: int | None = Field(default=None, gt=0, description="Override the profile's baud.")
    bus: int | str | None = Field(default=None, description="I2C bus number or /dev/i2c-N path.")
    address: int | None = Field(default=None, ge=0x03, le=0x77, description="7-bit I2C address.")
    device: str | None = Field(
        default=None, min_length=1, description="Audio sensors: the capture device, an ALSA "
        "name as PortAudio lists it (e.g. 'default', 'hw:1,0' or part of the card name), or "
        "'wav:/path/file.wav' to replay a recording in real time (to test a box).")
    timeout_s: float = Field(default=2.0, gt=0, le=30, description="Reply timeout (serial).")
    reset_after_failures: int = Field(default=3, ge=1,
                                      description="Soft-reset the sensor after this many "
                                      "consecutive failures.")
    reopen_after_failures: int = Field(default=6, ge=1,
                                       description="Close and reopen its bus after this many.")
    restart_after_not_ready: int = Field(
        default=5, ge=1, description="Restart the sensor's measurement after this many "
        "consecutive slots without fresh data (after warm-up); each such streak also "
        "counts as one failure, so resets and reopens follow if it keeps answering 'not "
        "ready' (a sensor that went idle after a brown-out).")
    calibration: dict[str, Calibration] = Field(default_factory=dict)
    humidity: HumidityConfig | None = Field(
        default=None, description="For PM sensors: the RH source and correction.")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="Model-specific settings (see the driver).")

    @model_validator(mode="after")
    def _fits_profile(self, info: ValidationInfo) -> SensorConfig:
        profiles: dict[str, Profile] = (info.context or {}).get("profiles", {})
        profile = profiles.get(self.model)
        if profile is None:
            known = ", ".join(sorted(profiles)) or "none found"
            raise ValueError(f"unknown model {self.model!r} (known: {known})")
        self._check_attachment(profile)
        interval = self.interval_s or profile.default_interval_s
        if interval < profile.min_interval_s:
            raise ValueError(f"interval_s {interval} is below the {self.model} minimum "
                             f"of {profile.min_interval_s} s")
        if self.window_s is not None and self.window_s < interval:
            raise ValueError(f"window_s {self.window_s} is shorter than interval_s {interval}")
        unknown = sorted(set(self.calibration) - {q.name for q in profile.quantities})
        if unknown:
            raise ValueError(f"calibration for unknown quantities {unknown}")
        if self.reopen_after_failures < self.reset_after_failures:
            raise ValueError("reopen_after_failures must be at least reset_after_failures")
        return self

    def _check_attachment(self, profile: Profile) -> None:
        """Exactly the keys of the profile's bus kind: port, bus/address or device."""
        if profile.bus == "audio":
            if self.device is None:
                raise ValueError(f"{self.model} is an audio sensor: set device")
            wired = [key for key in ("port", "baudrate", "bus", "address")
                     if getattr(self, key) is not None]
            if wired:
                raise ValueError(f"{self.model} is an audio sensor: {'/'.join(wired)} "
                                 "do not apply")
            return
        if self.device is not None:
            raise ValueError(f"{self.model} is not an audio sensor: device does not apply")
        if profile.bus == "serial":
            if self.port is None:
                raise ValueError(f"{self.model} is a serial sensor: set port")
            if self.bus is not None or self.address is not None:
                raise ValueError(f"{self.model} is a serial sensor: bus/address do not apply")
        elif self.port is not None or self.baudrate is not None:
            raise ValueError(f"{self.model} is an I2C sensor: port/baudrate do not apply")


@dataclass(frozen=True)
class ResolvedSensor:
    """A sensor with every default filled in from its profile: what the sampler runs."""

    sensor_id: str
    profile: Profile
    config: SensorConfig
    interval_s: float
    window_s: float
    warmup_s: float
    baudrate: int | None
    bus: int | str
    address: int | None

    @classmethod
    def resolve(cls, sensor_id: str, config: SensorConfig, profile: Profile) -> ResolvedSensor:
        interval = config.interval_s or profile.default_interval_s
        window = config.window_s or max(DEFAULT_WINDOW_S, interval)
        return cls(
            sensor_id=sensor_id, profile=profile, config=config, interval_s=interval,
            window_s=window,
            warmup_s=profile.warmup_s if config.warmup_s is None else config.warmup_s,
            baudrate=config.baudrate or profile.baudrate,
            bus=1 if config.bus is None else config.bus,
            address=config.address if config.address is not None else profile.address,
        )
