"""The box as OGC SensorThings API v1.1 entities, and its windows as Observations
(pure: no I/O; ``sensorthings_client.py`` talks to the server).

What the server gets, each found again by ``properties.lokaalmeten_id`` (the key), so
provisioning twice creates nothing twice:

* a **Thing** per box (key ``<device_id>``), with the box's agent version and serial,
  and its **Location** (key ``location/<device_id>``; a GeoJSON Point, WGS 84,
  ``[longitude, latitude(, altitude)]``);
* a **Sensor** per sensor *model* (key ``sensor-model/<model>``), from the firmware
  profile: a model's description is the same on every box, so boxes share it;
* an **ObservedProperty** per quantity (key ``quantity/<name>``, definition
  ``observed_property_base`` + name), shared likewise;
* a **Datastream** per box, sensor and quantity (key
  ``<device_id>/<sensor_id>/<model>/<quantity>``: a sensor swapped for another model
  starts a new Datastream, as its Observations are another instrument's), with the
  profile's UCUM unit.

An **Observation** is one window of one quantity: ``phenomenonTime`` the interval it
covers (``window_s`` before the window's end to its end; an instant when the value
covers no span), ``resultTime`` the end, ``result`` the value (a window's mean),
``parameters`` the window's ``window_s``, ``n``, ``min`` and ``max``, the box's
``boot_id`` and ``seq`` (so a receiver can drop the duplicate an at-least-once retry
makes), and ``resultQuality`` ``{"flags": [...]}`` when the window carries quality
flags. Health values and quantities with no Datastream are not sent.
"""

from __future__ import annotations

import html
import json
import math
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from agent.config.location import LocationConfig
from agent.config.sensors import ResolvedSensor
from agent.config.sensorthings import SensorThingsConfig
from agent.health.heartbeat import is_health
from agent.models import OutboxRecord
from agent.publish.delivery import Answer, Verdict, Work, verdict

KEY = "lokaalmeten_id"
"""The ``properties`` member that names an entity for provisioning."""
OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
UCUM_DEFINITION = "http://www.opengis.net/def/uom/UCUM/0/"
"""OGC's register of UCUM codes: the definition is this plus the code."""
UNIT_NAMES = {"ug/m3": "microgram per cubic metre", "Cel": "degree Celsius",
              "%": "percent", "hPa": "hectopascal", "[ppm]": "parts per million",
              "dB": "decibel", "/cm3": "per cubic centimetre",
              "/dL": "per decilitre", "1": "one", "m/s": "metre per second",
              "um": "micrometre", "Pa": "pascal"}

Collection = Literal["Things", "Locations", "Sensors", "ObservedProperties", "Datastreams"]
Json = dict[str, object]
EntityId = int | str
"""``@iot.id``: FROST numbers entities, other servers use UUID strings."""


@dataclass(frozen=True)
class Entity:
    """One entity provisioning makes sure of: where, its key, its own fields, and the
    keys of the entities it links to (by navigation property)."""

    collection: Collection
    key: str
    fields: Json
    links: tuple[tuple[str, str], ...] = ()
    """(navigation property, key of the linked entity), e.g. ("Thing", "box-1")."""
    many: bool = False
    """The links are to-many (a Thing's ``Locations``), sent as a list."""


@dataclass(frozen=True)
class Catalog:
    """Everything the box needs on the server, in creation order (links point back)."""

    device_id: str
    entities: tuple[Entity, ...]
    models: dict[str, str]
    """Sensor id to model, as the Datastream keys name them."""

    def datastream_keys(self) -> frozenset[str]:
        return frozenset(e.key for e in self.entities if e.collection == "Datastreams")


@dataclass(frozen=True)
class ObservationPost:
    """One Observation for one outbox row; the Datastream is named by key until sent."""

    datastream: str
    body: Json
    row_id: int
    utc_ms: int

    @property
    def row_ids(self) -> tuple[int, ...]:
        return (self.row_id,)

    @property
    def label(self) -> str:
        return f"observation of {self.datastream} at {iso(self.utc_ms)}"


def datastream_key(device_id: str, sensor: ResolvedSensor, quantity: str) -> str:
    return f"{device_id}/{sensor.sensor_id}/{sensor.profile.model}/{quantity}"


def catalog(config: SensorThingsConfig, device_id: str, sensors: Iterable[ResolvedSensor],
            location: LocationConfig | None, *, agent_version: str,
            box_serial: str | None) -> Catalog:
    """The entities for the box and its chosen sensors (pure: the same config gives the
    same catalog, which is what makes provisioning idempotent)."""
    chosen = [s for s in sensors if config.sensors is None or s.sensor_id in config.sensors]
    entities: list[Entity] = []
    thing_links: tuple[tuple[str, str], ...] = ()
    if location is not None:
        entities.append(_location(device_id, location))
        thing_links = (("Locations", f"location/{device_id}"),)
    properties: Json = {KEY: device_id, "agent_version": agent_version}
    if box_serial is not None:
        properties["serial"] = box_serial
    entities.append(Entity("Things", device_id, {
        "name": device_id,
        "description": "Lokaal Meten sensor box" + (
            f" at {location.name}" if location is not None and location.name else ""),
        "properties": properties}, thing_links, many=True))
    seen: set[str] = set()
    for sensor in chosen:
        profile = sensor.profile
        model_key = f"sensor-model/{profile.model}"
        if model_key not in seen:
            seen.add(model_key)
            detail = f"{profile.name}. {profile.datasheet}".strip(". ")
            entities.append(Entity("Sensors", model_key, {
                "name": profile.name, "description": f"{profile.name} ({profile.bus})",
                "encodingType": "text/html",
                "metadata": f"<p>{html.escape(detail)}</p>",
                "properties": {KEY: model_key, "model": profile.model}}))
        for quantity in profile.quantities:
            property_key = f"quantity/{quantity.name}"
            if property_key not in seen:
                seen.add(property_key)
                entities.append(Entity("ObservedProperties", property_key, {
                    "name": quantity.name,
                    "definition": config.observed_property_base + quantity.name,
                    "description": quantity.description or quantity.name,
                    "properties": {KEY: property_key}}))
            key = datastream_key(device_id, sensor, quantity.name)
            entities.append(Entity("Datastreams", key, {
                "name": f"{device_id} {sensor.sensor_id} {quantity.name}",
                "description": f"{quantity.name} by {profile.name} {sensor.sensor_id!r} "
                               f"on {device_id}, per {sensor.window_s:g} s window",
                "observationType": OM_MEASUREMENT,
                "unitOfMeasurement": unit(quantity.unit),
                "properties": {KEY: key, "sensor_id": sensor.sensor_id,
                               "window_s": sensor.window_s}},
                (("Thing", device_id), ("Sensor", model_key),
                 ("ObservedProperty", property_key))))
    return Catalog(device_id, tuple(entities), {s.sensor_id: s.profile.model for s in chosen})


def unit(code: str) -> Json:
    """A Datastream's unitOfMeasurement for a UCUM code."""
    return {"name": UNIT_NAMES.get(code, code), "symbol": code,
            "definition": UCUM_DEFINITION + urllib.parse.quote(code, safe="")}


def observation(record: OutboxRecord) -> Json:
    """The Observation body for one row (without its Datastream link)."""
    m = record.measurement
    end = iso(m.utc_ms)
    span = m.span_s
    phenomenon = end if not span else f"{iso(m.utc_ms - round(span * 1000))}/{end}"
    parameters: Json = {"boot_id": record.boot_id, "seq": record.seq}
    if span:
        parameters["window_s"] = span
    if m.stats is not None:
        parameters |= {"n": m.stats.count, "min": m.stats.minimum, "max": m.stats.maximum}
    body: Json = {"phenomenonTime": phenomenon, "resultTime": end, "result": m.value,
                  "parameters": parameters}
    if m.flags:
        body["resultQuality"] = {"flags": sorted(str(f) for f in m.flags)}
    return body


def plan(records: Sequence[OutboxRecord], catalog: Catalog) -> Work[ObservationPost]:
    """An Observation per row that has a Datastream; the rest skipped (health, sensors
    not chosen, no finite value)."""
    if not records:
        return Work([], [], 0)
    datastreams = catalog.datastream_keys()
    posts: list[ObservationPost] = []
    skip: list[int] = []
    for record in records:
        m = record.measurement
        model = catalog.models.get(m.sensor_id)
        key = f"{catalog.device_id}/{m.sensor_id}/{model}/{m.quantity}"
        if model is None or key not in datastreams or is_health(m.sensor_id, m.quantity) \
                or not math.isfinite(m.value):
            skip.append(record.row_id)
            continue
        posts.append(ObservationPost(key, observation(record), record.row_id, m.utc_ms))
    return Work(posts, skip, records[-1].row_id)


def sta_verdict(answer: Answer) -> Verdict:
    """What a SensorThings server means: 201 stored; 400 this Observation (a value or
    time it does not take); 401/403 credentials, 404 a wrong URL or a Datastream gone
    (refused: kept, a person looks, provisioning runs again); 5xx, 408, 429 retried."""
    return verdict(answer.status or 0)


def entity_url(base: str, collection: str, entity_id: EntityId) -> str:
    """``Things(7)`` for a number, ``Things('…')`` for a string (OData key syntax)."""
    if isinstance(entity_id, int):
        return f"{base}/{collection}({entity_id})"
    literal = urllib.parse.quote(entity_id.replace("'", "''"))
    return f"{base}/{collection}('{literal}')"


def find_url(base: str, collection: str, key: str) -> str:
    """The query that finds an entity by its key in ``properties``."""
    literal = key.replace("'", "''")
    query = urllib.parse.urlencode({"$filter": f"properties/{KEY} eq '{literal}'",
                                    "$top": "2"}, quote_via=urllib.parse.quote)
    return f"{base}/{collection}?{query}"


def changes(wanted: Json, found: Json) -> Json:
    """The fields of ``wanted`` the server holds otherwise (compared as JSON values)."""
    return {k: v for k, v in wanted.items()
            if json.dumps(found.get(k), sort_keys=True) != json.dumps(v, sort_keys=True)}


def json_bytes(body: Json) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def iso(utc_ms: int) -> str:
    """ISO 8601 UTC with milliseconds only when there are any."""
    moment = datetime.fromtimestamp(utc_ms / 1000, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{utc_ms % 1000:03d}Z" if utc_ms % 1000 else "Z")


def _location(device_id: str, location: LocationConfig) -> Entity:
    coordinates: list[float] = [location.longitude, location.latitude]
    if location.altitude_m is not None:
        coordinates.append(location.altitude_m)
    key = f"location/{device_id}"
    properties: Json = {KEY: key}
    if location.height_m is not None:
        properties["height_m"] = location.height_m
    return Entity("Locations", key, {
        "name": location.name or device_id,
        "description": f"Where Lokaal Meten box {device_id} is mounted",
        "encodingType": "application/geo+json",
        "location": {"type": "Point", "coordinates": coordinates},
        "properties": properties})
