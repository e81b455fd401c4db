"""Run discovery configs through Home Assistant's own MQTT discovery code (offline).

Run by the Python of the Home Assistant venv (tests/homeassistant_peer.py), not by the
agent's: reads ``{"prefix": ..., "configs": {topic: payload}}`` as JSON on stdin and
prints ``{topic: [problem, ...]}`` for every config, empty lists when Home Assistant
takes it as sent. Per config it does what ``mqtt/discovery.py`` does with a message
(topic pattern, JSON, abbreviations, origin) and then validates the payload with the
component's ``DISCOVERY_SCHEMA``, which drops unknown keys silently, so a key that does
not survive validation is reported too. For sensors it checks the unit against the
device class (``DEVICE_CLASS_UNITS``; Home Assistant 2025.4 only logs a mismatch, later
versions refuse it) and the state class against ``DEVICE_CLASS_STATE_CLASSES``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile

import voluptuous as vol
from homeassistant.components.mqtt import binary_sensor, discovery, sensor
from homeassistant.components.sensor.const import (
    DEVICE_CLASS_STATE_CLASSES,
    DEVICE_CLASS_UNITS,
    SensorDeviceClass,
    SensorStateClass,
)
from homeassistant.core import HomeAssistant

SCHEMAS = {"sensor": sensor.DISCOVERY_SCHEMA, "binary_sensor": binary_sensor.DISCOVERY_SCHEMA}


def problems(prefix: str, topic: str, payload: str) -> list[str]:  # noqa: PLR0911
    if not topic.startswith(prefix + "/"):
        return [f"not under the discovery prefix {prefix!r}"]
    match = discovery.TOPIC_MATCHER.fullmatch(topic.removeprefix(prefix + "/"))
    if match is None:
        return ["Home Assistant ignores this topic (illegal characters or levels)"]
    component = match.group("component")
    if component not in SCHEMAS:
        return [f"component {component!r} is not one this check knows"]
    try:
        config = discovery.MQTTDiscoveryPayload(json.loads(payload))
    except ValueError as exc:
        return [f"not JSON: {exc}"]
    discovery._replace_all_abbreviations(config)
    if not discovery._valid_origin_info(config):
        return ["origin rejected"]
    try:
        valid = SCHEMAS[component](dict(config))
    except vol.Invalid as exc:
        return [f"schema: {exc}"]
    found = [f"key {key!r} dropped by the schema" for key in config if key not in valid]
    found += [f"device key {key!r} dropped by the schema"
              for key in config.get("device", {}) if key not in valid.get("device", {})]
    if component == "sensor":
        found += _units(valid)
    return found


def _units(valid: dict) -> list[str]:
    found = []
    device_class = valid.get("device_class")
    unit = valid.get("unit_of_measurement")
    state_class = valid.get("state_class")
    if device_class is not None:
        dc = SensorDeviceClass(device_class)
        if dc in DEVICE_CLASS_UNITS and unit not in DEVICE_CLASS_UNITS[dc]:
            found.append(f"unit {unit!r} is not one of device class {dc.value!r}: "
                         f"{sorted(map(str, DEVICE_CLASS_UNITS[dc]))}")
        if state_class is not None and dc in DEVICE_CLASS_STATE_CLASSES \
                and SensorStateClass(state_class) not in DEVICE_CLASS_STATE_CLASSES[dc]:
            found.append(f"state class {state_class!r} not allowed for {dc.value!r}")
    return found


async def check(request: dict) -> dict[str, list[str]]:
    """Inside a (never started) Home Assistant, as discovery runs: templates need one."""
    with tempfile.TemporaryDirectory() as config_dir:
        hass = HomeAssistant(config_dir)
        try:
            return {topic: problems(request["prefix"], topic, payload)
                    for topic, payload in request["configs"].items()}
        finally:
            await hass.async_stop(force=True)


def main() -> None:
    json.dump(asyncio.run(check(json.load(sys.stdin))), sys.stdout)


if __name__ == "__main__":
    main()
