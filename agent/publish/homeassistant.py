"""Home Assistant MQTT discovery: what to announce and what to publish (pure).

One retained discovery config per (sensor, quantity) at
``<discovery_prefix>/sensor/<node>/<sensor>_<quantity>/config``; each quantity's latest
window on a retained state topic of its own, ``<topic_prefix>/<device_id>/state/<sensor>/
<quantity>``, carrying the same measurement object as the batched stream, so a Home
Assistant template reads ``value_json.value`` and never picks a value out of a batch.
Availability is the agent's retained status topic, whose ``offline`` is the Last Will.

Home Assistant checks a sensor's unit against its device class (``DEVICE_CLASS_UNITS``
in ``homeassistant.components.sensor.const``) and drops a state it cannot parse;
:data:`QUANTITIES` names, for every quantity a firmware profile can produce, the device
class and unit Home Assistant expects, and the UCUM unit the table was written for, so
a profile whose unit changes is not announced under a unit it no longer sends
(tests/publish/test_homeassistant.py runs every config through Home Assistant's own
schema and unit tables).

Each sensor is a device of its own (model from its profile, serial and firmware when
its driver reported them) attached to the box's device, which carries the agent's
version and a connectivity entity on the status topic.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.config.mqtt import MqttConfig
from agent.config.profiles import Profile
from agent.config.sensors import ResolvedSensor
from agent.models import OutboxRecord
from agent.publish.payload import measurement_object

COMPONENT = "sensor"
CORRECTED_SUFFIX = "_rh_corrected"
"""Humidity-corrected PM (agent/sampling/humidity.py): a quantity beside the raw one."""
MASS_UNIT = "ug/m3"
ORIGIN = {"name": "Lokaal Meten agent"}
"""Shown by Home Assistant as where the entity came from."""


@dataclass(frozen=True, slots=True)
class HaQuantity:
    """How Home Assistant shows one quantity, valid only while it is sent in ``ucum``."""

    name: str
    ucum: str
    unit: str | None
    device_class: str | None = None


def _pm(name: str, device_class: str | None) -> HaQuantity:
    return HaQuantity(name, MASS_UNIT, "µg/m³", device_class)


def _level(name: str) -> HaQuantity:
    """A sound level: dBA when A-weighted; C and Z levels have no unit of their own there."""
    return HaQuantity(name, "dB", "dBA" if name.startswith("LA") else "dB", "sound_pressure")


QUANTITIES: dict[str, HaQuantity] = {
    "pm1_0": _pm("PM1", "pm1"), "pm2_5": _pm("PM2.5", "pm25"), "pm10": _pm("PM10", "pm10"),
    "pm4_0": _pm("PM4", None),  # Home Assistant has no PM4 device class
    "pm1_0_cf1": _pm("PM1 (CF=1)", "pm1"), "pm2_5_cf1": _pm("PM2.5 (CF=1)", "pm25"),
    "pm10_cf1": _pm("PM10 (CF=1)", "pm10"),
    **{f"nc{size}": HaQuantity(f"Particles {label} µm", "/cm3", "/cm³")
       for size, label in (("0_5", "0.3-0.5"), ("1_0", "0.3-1"), ("2_5", "0.3-2.5"),
                           ("4_0", "0.3-4"), ("10", "0.3-10"))},
    **{f"count_{size}um": HaQuantity(f"Particles > {label} µm", "/dL", "/0.1 L")
       for size, label in (("0_3", "0.3"), ("0_5", "0.5"), ("1_0", "1"), ("2_5", "2.5"),
                           ("5_0", "5"), ("10", "10"))},
    "typical_particle_size": HaQuantity("Typical particle size", "um", "µm"),
    "co2": HaQuantity("CO₂", "[ppm]", "ppm", "carbon_dioxide"),
    "temperature": HaQuantity("Temperature", "Cel", "°C", "temperature"),
    "relative_humidity": HaQuantity("Humidity", "%", "%", "humidity"),
    "pressure": HaQuantity("Air pressure", "hPa", "hPa", "atmospheric_pressure"),
    "voc_index": HaQuantity("VOC index", "1", None),
    "nox_index": HaQuantity("NOx index", "1", None),
    "wind_speed": HaQuantity("Wind speed", "m/s", "m/s", "wind_speed"),
    "sound_level": HaQuantity("Sound level", "dB", "dBA", "sound_pressure"),
    **{q: _level(name) for q, name in (
        ("laeq", "LAeq"), ("lamin", "LAmin"), ("lamax", "LAmax"), ("lafmax", "LAFmax"),
        ("lafmin", "LAFmin"), ("la10", "LA10"), ("la50", "LA50"), ("la90", "LA90"),
        ("lceq", "LCeq"), ("lcmin", "LCmin"), ("lcmax", "LCmax"),
        ("lzeq", "LZeq"), ("lzmin", "LZmin"), ("lzmax", "LZmax"))},
}
"""Every quantity a firmware profile produces (checked by a test), as Home Assistant
shows it. Counts and indices have no device class; all have ``state_class: measurement``."""

_TOPIC_LEVEL = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass(frozen=True, slots=True)
class Announcement:
    """What Home Assistant should know: configs by topic, and which states to publish."""

    configs: Mapping[str, bytes]
    """Discovery topic → config payload."""
    clears: Mapping[str, tuple[str, ...]]
    """Discovery topic → retained state topics to empty when it is removed."""
    states: Mapping[str, frozenset[str]]
    """Sensor id → quantities whose latest window goes to a retained state topic."""
    topic_prefix: str = ""
    device_id: str = ""
    standing: Mapping[str, bytes] = field(default_factory=dict)
    """Retained messages every connection gets that are never removed and so need no
    remembering: the box's birth message (``agent.publish.birth``)."""

    def state_messages(self, records: Iterable[OutboxRecord]) -> list[tuple[str, bytes]]:
        """The retained state messages for ``records`` (oldest first): the newest window
        of each announced (sensor, quantity) only, since a retained topic keeps one."""
        newest: dict[tuple[str, str], OutboxRecord] = {}
        for record in records:
            m = record.measurement
            if m.quantity in self.states.get(m.sensor_id, ()):
                newest[(m.sensor_id, m.quantity)] = record
        return [(state_topic(self.topic_prefix, self.device_id, sensor_id, quantity),
                 _json(measurement_object(r.seq, r.measurement)))
                for (sensor_id, quantity), r in newest.items()]


NOTHING = Announcement({}, {}, {})


@dataclass(frozen=True, slots=True)
class SensorDevice:
    """One announced sensor: its id, profile, and what its driver told about itself."""

    sensor_id: str
    profile: Profile
    corrected: bool = False
    """Humidity-corrected PM is published beside the raw values (a κ is configured)."""
    serial: str | None = None
    firmware: str | None = None


@dataclass(frozen=True, slots=True)
class Box:
    """The box as Home Assistant's parent device, and where our topics live."""

    device_id: str
    topic_prefix: str
    discovery_prefix: str
    agent_version: str
    serial: str | None = None


def node_id(device_id: str) -> str:
    """The discovery topic's node level: device ids may hold '.', which it does not allow."""
    return "lokaalmeten_" + _TOPIC_LEVEL.sub("_", device_id)


def config_topic(box: Box, sensor_id: str, quantity: str) -> str:
    """Where one quantity's discovery config is retained."""
    node = node_id(box.device_id)
    return f"{box.discovery_prefix}/{COMPONENT}/{node}/{sensor_id}_{quantity}/config"


def state_topic(topic_prefix: str, device_id: str, sensor_id: str, quantity: str) -> str:
    """Retained latest window of one quantity (docs/payload.md)."""
    return f"{topic_prefix}/{device_id}/state/{sensor_id}/{quantity}"


def ha_quantity(quantity: str, unit: str) -> HaQuantity | None:
    """How Home Assistant shows ``quantity`` sent in ``unit``; None when not in the table
    (or sent in a unit the table was not written for): such a quantity is not announced."""
    base = quantity.removesuffix(CORRECTED_SUFFIX)
    known = QUANTITIES.get(base)
    if known is None or known.ucum != unit:
        return None
    if base != quantity:
        return HaQuantity(f"{known.name}, humidity-corrected", known.ucum, known.unit,
                          known.device_class)
    return known


def announced_quantities(sensor: SensorDevice) -> list[tuple[str, HaQuantity, float]]:
    """(quantity, how shown, resolution) for every quantity of the sensor we announce."""
    found = []
    for q in sensor.profile.quantities:
        names = [q.name] + ([q.name + CORRECTED_SUFFIX]
                            if sensor.corrected and q.unit == MASS_UNIT else [])
        for name in names:
            shown = ha_quantity(name, q.unit)
            if shown is not None:
                found.append((name, shown, q.resolution))
    return found


def discovery_configs(box: Box, sensors: Iterable[SensorDevice]) -> dict[str, bytes]:
    """Every retained discovery config (topic → JSON payload) for the box and ``sensors``."""
    node = node_id(box.device_id)
    status = f"{box.topic_prefix}/{box.device_id}/status"
    box_device: dict[str, object] = {
        "identifiers": [node], "name": box.device_id, "manufacturer": "Lokaal Meten",
        "model": "Lokaal Meten edge agent", "sw_version": box.agent_version}
    if box.serial:
        box_device["serial_number"] = box.serial
    configs = {f"{box.discovery_prefix}/binary_sensor/{node}/connected/config": _json({
        "name": "Connected", "unique_id": f"{node}_connected", "object_id": f"{node}_connected",
        "device_class": "connectivity", "entity_category": "diagnostic",
        "state_topic": status, "payload_on": "online", "payload_off": "offline",
        "device": box_device, "origin": ORIGIN})}
    for sensor in sensors:
        device = _sensor_device(node, box.device_id, sensor)
        for quantity, shown, resolution in announced_quantities(sensor):
            object_id = f"{node}_{sensor.sensor_id}_{quantity}"
            topic = state_topic(box.topic_prefix, box.device_id, sensor.sensor_id, quantity)
            config: dict[str, object] = {
                "name": shown.name, "unique_id": object_id, "object_id": object_id,
                "state_topic": topic, "value_template": "{{ value_json.value }}",
                "json_attributes_topic": topic, "state_class": "measurement",
                "suggested_display_precision": _decimals(resolution),
                "availability_topic": status, "payload_available": "online",
                "payload_not_available": "offline", "device": device, "origin": ORIGIN}
            if shown.unit is not None:
                config["unit_of_measurement"] = shown.unit
            if shown.device_class is not None:
                config["device_class"] = shown.device_class
            configs[config_topic(box, sensor.sensor_id, quantity)] = _json(config)
    return configs


def _sensor_device(node: str, box_name: str, sensor: SensorDevice) -> dict[str, object]:
    device: dict[str, object] = {
        "identifiers": [f"{node}_{sensor.sensor_id}"], "name": f"{box_name} {sensor.sensor_id}",
        "model": sensor.profile.name, "model_id": sensor.profile.model, "via_device": node}
    if sensor.serial:
        device["serial_number"] = sensor.serial
    if sensor.firmware:
        device["sw_version"] = sensor.firmware
    return device


def _decimals(resolution: float) -> int:
    """Digits after the point that the sensor's resolution justifies (0.1 → 1, 1 → 0)."""
    return max(0, math.ceil(-math.log10(resolution) - 1e-9))


def _json(body: Mapping[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def announcement(box: Box, sensors: Iterable[SensorDevice]) -> Announcement:
    """Configs for ``sensors``, what each removal must clear, and which states to publish."""
    sensors = list(sensors)
    clears = {config_topic(box, s.sensor_id, q):
              (state_topic(box.topic_prefix, box.device_id, s.sensor_id, q),)
              for s in sensors for q, _, _ in announced_quantities(s)}
    return Announcement(discovery_configs(box, sensors), clears,
                        {s.sensor_id: frozenset(q for q, _, _ in announced_quantities(s))
                         for s in sensors}, box.topic_prefix, box.device_id)


def announcement_for(mqtt: MqttConfig, device_id: str, sensors: list[ResolvedSensor],
                     agent_version: str, box_serial: str | None, *,
                     identities: Mapping[str, Mapping[str, str]] | None = None
                     ) -> Announcement:
    """What ``[mqtt.home_assistant]`` asks for, of the enabled ``sensors``; nothing when
    absent or disabled (then whatever was announced before is removed). ``identities``:
    what each sensor said of itself (``serial`` or an SDS011's ``device_id``, ``firmware``)."""
    ha = mqtt.home_assistant
    if ha is None:
        return NOTHING
    known = identities or {}
    wanted = ha.announced([s.sensor_id for s in sensors])
    devices = [SensorDevice(s.sensor_id, s.profile, corrected=s.config.humidity is not None
                            and s.config.humidity.kappa is not None,
                            serial=known.get(s.sensor_id, {}).get("serial")
                            or known.get(s.sensor_id, {}).get("device_id"),
                            firmware=known.get(s.sensor_id, {}).get("firmware"))
               for s in sensors if s.sensor_id in wanted]
    box = Box(device_id, mqtt.topic_prefix, ha.discovery_prefix, agent_version, box_serial)
    return announcement(box, devices)
