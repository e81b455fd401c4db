"""A strict local stand-in for Sensor.Community's push endpoint, for tests.

Sensor.Community's server (feinstaub-api, a Django REST framework app) is in no
package registry, so it cannot run here. This one reproduces what its source
says about ``POST /v1/push-sensor-data/`` (opendata-stuttgart/feinstaub-api):

* sensors/authentication.py (NodeUidAuthentication): the node comes from the
  ``X-Sensor`` header (or ``Sensor``, ``Node``), the pin from ``X-Pin`` (or ``Pin``,
  default ``-``). An unknown node raises AuthenticationFailed("Node not found in
  database."); the authenticator sends no WWW-Authenticate header, so REST
  framework answers 403. Without a node header nobody is authenticated and
  ``create`` raises NotAuthenticated: 403 as well.
* sensors/serializers.py (SensorDataSerializer.create): an empty
  ``sensordatavalues`` is a ValidationError (400, "sensordatavalues was empty.
  Nothing to save."); a node with one sensor takes the push whatever the pin, a
  node with several picks the sensor whose pin equals ``X-Pin``, and none is a
  400 ("sensor could not be selected.").
* sensors/models.py: ``value`` is a TextField (REST framework's CharField turns a
  number into its ``str``, refuses a bool or a blank), ``value_type`` a CharField
  with choices (anything else: 400, '"x" is not a valid choice.'), and
  SensorDataValue is unique together on (sensordata, value_type): a value type
  twice in one push breaks the constraint in ``bulk_create``, an IntegrityError,
  which is a 500. ``timestamp`` defaults to now; a client's ISO 8601 time is
  taken as given (naive times as UTC, USE_TZ with TIME_ZONE UTC).
* Success is 201 with the serializer's data: the stored values as strings.

The value types accepted are the model's choices plus what the current airrohr
firmware sends (SPS30's P4/N05/.../TS, DNMS's noise_LA*, SCD30's co2_ppm): the
production server stores those, so it must accept them; the published model
predates them.

Test controls: ``nodes`` (node id → its sensors' pins), ``force`` (statuses to
answer the next requests with, before any checking), ``stall_s`` (hold each
request before answering: time to kill a client mid-push), ``down`` (close
every connection without an answer).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.mqtt_broker import free_port

PATH = "/v1/push-sensor-data/"
MODEL_VALUE_TYPES = frozenset({
    "P0", "P1", "P2", "durP1", "durP2", "ratioP1", "ratioP2", "samples", "min_micro",
    "max_micro", "temperature", "humidity", "pressure", "altitude", "pressure_sealevel",
    "brightness", "dust_density", "vo_raw", "voltage", "P10", "P25", "durP10", "durP25",
    "ratioP10", "ratioP25", "door_state", "lat", "lon", "height", "hdop", "timestamp", "age",
    "satelites", "speed", "azimuth", "noise_L01", "noise_L95", "noise_Leq"})
"""feinstaub-api sensors/models.py SENSOR_TYPE_CHOICES (migration 0020, 2019)."""
FIRMWARE_VALUE_TYPES = frozenset({
    "P4", "N05", "N1", "N25", "N4", "N10", "TS", "noise_LAeq", "noise_LA_min",
    "noise_LA_max", "co2_ppm"})
"""What airrohr-firmware.ino pushes beyond those (fetchSensorSPS30/DNMS/SCD30)."""
VALUE_TYPES = MODEL_VALUE_TYPES | FIRMWARE_VALUE_TYPES
SERVER_ERROR_PAGE = b"<h1>Server Error (500)</h1>"
"""Django's production 500 page."""


@dataclass(frozen=True)
class Stored:
    """One SensorData row with its values, as the server keeps it."""

    node: str
    pin: str
    timestamp: datetime
    software_version: str
    values: tuple[tuple[str, str], ...]
    """(value_type, value): values are strings."""


@dataclass
class SensorCommunityServer:
    """The push endpoint on a free port of 127.0.0.1, answering as feinstaub-api does."""

    nodes: dict[str, set[str]] = field(default_factory=dict)
    force: list[int] = field(default_factory=list)
    stall_s: float = 0.0
    down: bool = False
    stored: list[Stored] = field(default_factory=list)
    received: int = 0
    """Requests that arrived (answered or not)."""
    answers: list[int] = field(default_factory=list)
    """Status of every request answered, in order."""
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self._httpd.daemon_threads = True
        # Polls for shutdown every 50 ms, not 0.5 s: each test stops one.
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def start(self) -> SensorCommunityServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def values(self, node: str, pin: str) -> list[tuple[datetime, dict[str, str]]]:
        """What a sensor of a node has stored: (timestamp, {value_type: value})."""
        with self._lock:
            return [(s.timestamp, dict(s.values)) for s in self.stored
                    if s.node == node and s.pin == pin]

    # -- the endpoint -------------------------------------------------------------------

    def answer(self, path: str, method: str, headers: dict[str, str], raw: bytes
               ) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request; stores a successful push."""
        try:
            return _json(201, self._create(path, method, headers, raw))
        except Refusal as refusal:
            return refusal.status, refusal.kind, refusal.body

    def _create(self, path: str, method: str, headers: dict[str, str], raw: bytes
                ) -> dict[str, object]:
        """PostSensorDataView.create, in REST framework's order: authenticate, parse,
        validate, then SensorDataSerializer.create; a Refusal is REST framework's answer."""
        if path != PATH:
            raise Refusal(404, {"detail": "Not found."})
        if method != "POST":
            raise Refusal(405, {"detail": f'Method "{method}" not allowed.'})
        node = headers.get("x-sensor") or headers.get("sensor") or headers.get("node")
        if node and node not in self.nodes:
            raise Refusal(403, {"detail": "Node not found in database."})
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if content_type != "application/json":
            raise Refusal(415, {"detail": f'Unsupported media type "{content_type}" in '
                                          "request."})
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise Refusal(400, {"detail": f"JSON parse error - {exc}"}) from exc
        fields, errors = _validate(data)
        if errors:
            raise Refusal(400, errors)
        values: list[tuple[str, str]] = fields["sensordatavalues"]
        if not values:
            raise Refusal(400, ["sensordatavalues was empty. Nothing to save."])
        if not node:
            raise Refusal(403, {"detail": "Authentication credentials were not provided."})
        pins = self.nodes[node]
        pin = headers.get("x-pin") or headers.get("pin") or "-"
        if len(pins) == 1:
            (pin,) = pins
        elif pin not in pins:
            raise Refusal(400, ["sensor could not be selected."])
        if len({value_type for value_type, _ in values}) != len(values):
            raise Refusal(500, SERVER_ERROR_PAGE)  # IntegrityError: unique_together
        stored = Stored(node, pin, fields["timestamp"] or datetime.now(UTC),
                        fields["software_version"], tuple(values))
        with self._lock:
            self.stored.append(stored)
            number = len(self.stored)
        return {"sensor": sorted(pins).index(pin) + 1, "sampling_rate": fields["sampling_rate"],
                "timestamp": stored.timestamp.isoformat().replace("+00:00", "Z"),
                "sensordatavalues": [{"value": v, "value_type": t, "sensordata": number}
                                     for t, v in values],
                "software_version": stored.software_version}


class Refusal(Exception):
    """An answer other than 201: JSON as REST framework writes it, or Django's 500 page."""

    def __init__(self, status: int, document: object) -> None:
        super().__init__(status)
        self.status = status
        if isinstance(document, bytes):
            self.kind, self.body = "text/html", document
        else:
            self.kind, self.body = "application/json", json.dumps(document).encode()


def _validate(data: object) -> tuple[dict, dict]:
    """REST framework's field validation of SensorDataSerializer: (fields, errors)."""
    if not isinstance(data, dict):
        return {}, {"non_field_errors": ["Invalid data. Expected a dictionary."]}
    errors: dict[str, object] = {}
    items = data.get("sensordatavalues")
    values: list[tuple[str, str]] = []
    if items is None:
        errors["sensordatavalues"] = ["This field is required."]
    elif not isinstance(items, list):
        errors["sensordatavalues"] = {"non_field_errors": [
            f'Expected a list of items but got type "{type(items).__name__}".']}
    else:
        item_errors = [_item(item, values) for item in items]
        if any(item_errors):
            errors["sensordatavalues"] = item_errors
    timestamp = None
    if data.get("timestamp") is not None:
        try:
            timestamp = datetime.fromisoformat(str(data["timestamp"]))
        except ValueError:
            errors["timestamp"] = ["Datetime has wrong format."]
        else:
            timestamp = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
    version = data.get("software_version", "")
    if not isinstance(version, str) or len(version) > 100:
        errors["software_version"] = ["Not a valid string of at most 100 characters."]
    rate = data.get("sampling_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int)):
        errors["sampling_rate"] = ["A valid integer is required."]
    return {"sensordatavalues": values, "timestamp": timestamp, "software_version": version,
            "sampling_rate": rate}, errors


def _item(item: object, values: list[tuple[str, str]]) -> dict[str, list[str]]:
    """One SensorDataValue: value (CharField), value_type (ChoiceField); its errors."""
    if not isinstance(item, dict):
        return {"non_field_errors": ["Invalid data. Expected a dictionary."]}
    errors: dict[str, list[str]] = {}
    value, value_type = item.get("value"), item.get("value_type")
    if value is None:
        errors["value"] = ["This field is required."]
    elif isinstance(value, bool) or not isinstance(value, str | int | float):
        errors["value"] = ["Not a valid string."]
    elif not str(value).strip():
        errors["value"] = ["This field may not be blank."]
    if value_type is None:
        errors["value_type"] = ["This field is required."]
    elif value_type not in VALUE_TYPES:
        errors["value_type"] = [f'"{value_type}" is not a valid choice.']
    if not errors:
        values.append((str(value_type), str(value).strip()))
    return errors


def _json(status: int, document: object) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(document).encode()


def _handler(server: SensorCommunityServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self._serve("POST")

        def do_GET(self) -> None:
            self._serve("GET")

        def _serve(self, method: str) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            server.received += 1
            if server.stall_s:
                time.sleep(server.stall_s)
            if server.down:
                self.close_connection = True
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            if server.force:
                status, kind, body = server.force.pop(0), "text/plain", b"forced"
            else:
                status, kind, body = server.answer(self.path, method, headers, raw)
            server.answers.append(status)
            try:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client is gone (killed mid-push): what it sent is stored
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler
