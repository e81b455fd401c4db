"""The box's birth message: what it is, where it stands and what it measures, retained.

Measurements stay lean (a sensor id, a quantity, a value); a receiver that wants to
know which model a sensor id is, in which unit each of its quantities comes, where
the box stands, which agent version and which configuration produced the data, reads
the retained ``<prefix>/<device_id>/birth`` once instead of finding it in every
message. It is published on every connection and after every reload, retained at
QoS 1 (``agent.publish.discovery`` sends it with the Home Assistant configs), so a
receiver that subscribes later, or a broker that lost its retained store, gets it
too. ``config_sha256`` changes with every change of the effective configuration
(not with comments or layout), so a fleet operator sees which boxes run which.

Nothing here is personal: the camera entries name lines and zones, never an image.
The payload is documented in docs/payload.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.config.location import LocationConfig
from agent.config.sensors import ResolvedSensor

BIRTH_VERSION = 1


@dataclass(frozen=True, slots=True)
class CameraEntry:
    """A people counter as the birth message names it: lines and zones, nothing more."""

    camera_id: str
    interval_s: float
    lines: tuple[str, ...]
    zones: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Box:
    """What the birth message says about the box itself."""

    device_id: str
    agent_version: str
    box_serial: str | None
    config_sha256: str
    """``AgentConfig.sha256()``: the effective configuration's hash."""
    location: LocationConfig | None


def birth_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/{device_id}/birth"


def birth_payload(box: Box, sensors: Sequence[ResolvedSensor], cameras: Sequence[CameraEntry],
                  identities: Mapping[str, Mapping[str, str]] | None = None) -> bytes:
    """The retained birth message of ``box`` with its enabled ``sensors`` and ``cameras``;
    ``identities``: what each sensor said of itself when opened (serial, firmware)."""
    known = identities or {}
    body: dict[str, object] = {
        "version": BIRTH_VERSION,
        "device_id": box.device_id,
        "agent_version": box.agent_version,
        "box_serial": box.box_serial,
        "config_sha256": box.config_sha256,
        "location": None if box.location is None
        else box.location.model_dump(mode="json", exclude_none=True),
        "sensors": [_sensor(s, known.get(s.sensor_id, {})) for s in sensors],
        "cameras": [{"id": c.camera_id, "interval_s": c.interval_s, "lines": list(c.lines),
                     "zones": list(c.zones)} for c in cameras],
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _sensor(sensor: ResolvedSensor, identity: Mapping[str, str]) -> dict[str, object]:
    profile = sensor.profile
    where: dict[str, object] = (
        {"port": sensor.config.port} if sensor.config.port is not None
        else {"device": sensor.config.device} if sensor.config.device is not None
        else {"bus": sensor.bus, "address": sensor.address})
    return {"id": sensor.sensor_id, "model": profile.model, "name": profile.name,
            **where, "interval_s": sensor.interval_s, "window_s": sensor.window_s,
            "quantities": {q.name: q.unit for q in profile.quantities},
            "humidity_corrected": sensor.config.humidity is not None
            and sensor.config.humidity.kappa is not None,
            "identity": dict(identity)}
