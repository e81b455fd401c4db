"""``[cameras.<id>]`` sections: one per camera that counts people.

A camera section says where frames come from, which detector runs on them and
what to count: directed lines (in/out), zones (occupancy, optional density
and crowding alerts) and the whole frame (occupancy). Everything runs in a
separate counter process; only numbers come back (see docs/privacy.md).

Coordinates of lines, zones and ignore regions are pixels of the camera's
**native** frame (before ``resize_width``), x to the right and y downwards,
as on a snapshot taken with any other tool. The counter scales them itself,
so changing ``resize_width`` never moves a line.

This module imports nothing of ``agent.vision`` at import time: the daemon
must load a camera-less config without pulling in OpenCV or onnxruntime.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from agent.config.camera_setup import SetupConfig

NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,31}\Z")


def _valid_name(value: str) -> str:
    if not NAME.match(value):
        raise ValueError("use 1-32 of a-z, 0-9 or '_', starting with a letter or digit")
    return value


Name = Annotated[str, AfterValidator(_valid_name)]
"""Line and zone names: they become part of quantity names (``line_<name>_in``)."""

Point = tuple[float, float]


class LineConfig(BaseModel):
    """A directed counting line: crossing it from its left to its right counts *in*.

    Left and right are as seen on screen by someone walking from (x1, y1) to
    (x2, y2); swap the end points to swap in and out.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name = Field(description="Short name (a-z, 0-9, _); quantities line_<name>_in/_out.")
    x1: float = Field(description="Start point x, native frame pixels.")
    y1: float = Field(description="Start point y, native frame pixels.")
    x2: float = Field(description="End point x, native frame pixels.")
    y2: float = Field(description="End point y, native frame pixels.")
    hysteresis_px: float = Field(
        default=16.0, ge=0, description="Width of the band around the line in which a "
        "person's side is not decided, native pixels; dithering on the line counts nothing.")
    """16 px: on vtest (people 60-100 px tall) every band from 12 to 18 px counts all 34
    crossings of the labelled ``square`` line at every 1st, 2nd and 3rd frame and leaves
    ``mid``, ``path`` and market-street's ``track`` as they were; 10 px counts a walker
    dithering along the line twice, 20 px misses a man turning back 5-13 px beyond it
    (bench/accuracy.py, README "How accurate the counts are")."""

    @model_validator(mode="after")
    def _distinct_ends(self) -> LineConfig:
        if (self.x1, self.y1) == (self.x2, self.y2):
            raise ValueError("start and end point must differ")
        return self


class ZoneConfig(BaseModel):
    """A polygon on the ground: occupancy, and density when its real area is known."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name = Field(description="Short name (a-z, 0-9, _); quantities zone_<name>_*.")
    polygon: list[Point] = Field(
        min_length=3, description="Vertices [[x, y], ...] in native frame pixels, in order.")
    area_m2: float | None = Field(
        default=None, gt=0, description="Ground area the polygon covers, m² (measure it on "
        "site); enables zone_<name>_density_mean/_max in persons/m².")
    density_on: float | None = Field(
        default=None, gt=0, description="Crowding alert switches on at this density "
        "(persons/m²); published at once as zone_<name>_density_alert = 1. Needs area_m2.")
    density_off: float | None = Field(
        default=None, ge=0, description="Alert switches off at or below this density "
        "(persons/m², < density_on); published as zone_<name>_density_alert = 0.")

    @model_validator(mode="after")
    def _alert_settings(self) -> ZoneConfig:
        on, off = self.density_on, self.density_off
        if on is None and off is None:
            return self
        if on is None or off is None:
            raise ValueError("set both density_on and density_off")
        if self.area_m2 is None:
            raise ValueError("density alerts need area_m2")
        if not off < on:
            raise ValueError("density_off must be below density_on")
        return self


class MotionConfig(BaseModel):
    """Skip the detector while nothing in the picture changes (nights, empty squares)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Turn motion gating on or off.")
    width: int = Field(default=160, ge=32, le=640,
                       description="Width (px) of the grey thumbnail compared between frames.")
    pixel_threshold: int = Field(
        default=20, ge=1, le=255, description="A thumbnail pixel has changed when its grey "
        "level differs by more than this from the last analysed frame (0-255).")
    min_changed_fraction: float = Field(
        default=0.002, gt=0, le=1, description="The frame has changed when at least this "
        "fraction of thumbnail pixels changed (0.002 = 0.2 %, about a person far away).")
    max_skip_s: float = Field(
        default=5.0, gt=0, description="Run the detector at least this often (s) even when "
        "nothing seems to change, so slow drifts cannot freeze the counts.")


class CameraConfig(BaseModel):
    """One camera: source, detector, what to count, how often to report."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(
        min_length=1, description="Where frames come from: a V4L2 camera index ('0') or "
        "device ('/dev/video0'), a video file (replayed at its own frame rate), or an "
        "rtsp://, http:// or https:// (MJPEG) URL. '~' and $VARS are expanded.")
    enabled: bool = Field(default=True, description="Set false to keep the section but not run it.")
    loop: bool = Field(default=True, description="Video files: start again at the end "
                       "(a test box); false stops counting when the file ends.")
    fps_cap: float = Field(default=10.0, gt=0, le=60, description="Analyse at most this many "
                           "frames per second; fewer when the CPU allows fewer (measured as "
                           "it runs: fps_target). Extra frames are skipped, not queued.")
    resize_width: int | None = Field(
        default=None, ge=64, description="Shrink frames to this width (px, aspect kept) as "
        "they are read; saves memory and time with high-resolution cameras.")
    model: Path | None = Field(default=None, description="ONNX detector; default the bundled "
                               "NanoDet-g (models/README.md).")
    decoder: str = Field(default="nanodet", description="Output decoder of the model family: "
                         "nanodet, yolov8, yolo11, centernet.")
    input_size: int | tuple[int, int] | None = Field(
        default=None, description="Model input, one side or [width, height]; only for models "
        "with a dynamic input shape (the bundled one is fixed at 416).")
    score_threshold: float = Field(
        default=0.4, ge=0, le=1, description="Detector score from which a box is taken for "
        "a person (starts a track); weaker boxes, down to 0.2, only keep a person's track "
        "alive while they are half hidden. 0.4 is calibrated for the bundled model "
        "(bench/accuracy.py).")
    nms_iou: float = Field(default=0.5, ge=0, le=1,
                           description="Overlap (IoU) above which two boxes are one person.")
    roi_ignore: list[list[Point]] = Field(
        default_factory=list, description="Polygons (native pixels) where detections are "
        "dropped: a poster, a statue, a mirror. A box is dropped when its foot point is inside.")
    lines: list[LineConfig] = Field(default_factory=list, description="Counting lines.")
    zones: list[ZoneConfig] = Field(default_factory=list, description="Occupancy zones.")
    interval_s: float = Field(default=60.0, ge=1, le=3600,
                              description="Report period (s); intervals end on multiples of "
                              "it in UTC, so boxes line up.")
    suppress_below: int = Field(
        default=3, ge=0, description="Withhold every person figure below this (0 included) "
        "from the reports, and whatever would give it away; 0 reports everything (only for "
        "a test bench: small figures can single out one person). See docs/privacy.md.")
    motion: MotionConfig = Field(default_factory=MotionConfig,
                                 description="Motion gating of the detector.")
    setup: SetupConfig = Field(default_factory=SetupConfig, description="Set-up mode's "
                               "heat map: k, window, longest session (docs/camera-setup.md).")
    threads: int = Field(default=2, ge=1, le=16, description="onnxruntime threads for the "
                         "detector (a Pi 4 has four cores; leave some for the rest).")
    reconnect_min_s: float = Field(default=1.0, gt=0, description="First wait (s) before "
                                   "reopening a source that failed; doubles on each failure.")
    reconnect_max_s: float = Field(default=30.0, gt=0,
                                   description="Longest wait (s) between reopen attempts.")

    @field_validator("decoder")
    @classmethod
    def _known_decoder(cls, value: str) -> str:
        # numpy only: the decoder registry does not import OpenCV or onnxruntime.
        from agent.vision.decoders import decoder_names  # noqa: PLC0415

        if value not in decoder_names():
            raise ValueError(f"unknown decoder {value!r} (known: {', '.join(decoder_names())})")
        return value

    @field_validator("model")
    @classmethod
    def _model_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.expanduser().is_file():
            raise ValueError(f"model file {value} not found")
        return None if value is None else value.expanduser()

    @field_validator("roi_ignore")
    @classmethod
    def _polygons(cls, value: list[list[Point]]) -> list[list[Point]]:
        for i, polygon in enumerate(value):
            if len(polygon) < 3:
                raise ValueError(f"polygon {i} needs at least three points")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CameraConfig:
        names = [x.name for x in self.lines] + [z.name for z in self.zones]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"line and zone names must be unique: {doubled}")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        for zone in self.zones:
            if zone.density_on is not None and zone.area_m2 is not None \
                    and zone.density_on * zone.area_m2 < self.suppress_below:
                raise ValueError(
                    f"zone {zone.name!r}: density_on × area_m2 = "
                    f"{zone.density_on * zone.area_m2:g} persons, below suppress_below = "
                    f"{self.suppress_below}: an alert would single out fewer people than "
                    "the reports may show; raise density_on")
        return self

