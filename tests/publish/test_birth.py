"""The retained birth message: what the box is, where it stands, what it measures."""

from __future__ import annotations

import json
from pathlib import Path

from agent.config import parse_config
from agent.plan import plan
from agent.publish.birth import Box, CameraEntry, birth_payload, birth_topic
from agent.publish.discovery import Announcer
from agent.publish.homeassistant import Announcement

CONFIG = """device_id = "nl-utrecht-0042"

[location]
latitude = 52.0907
longitude = 5.1214
height_m = 3.5
name = "Oudegracht 231"

[sensors.pm]
model = "sds011"
port = "/dev/ttyUSB0"
window_s = 300

[sensors.pm.humidity]
source = "climate"
kappa = 0.4

[sensors.climate]
model = "bme280"
bus = 1
address = 0x76

[sensors.spare]
model = "sht3x"
bus = 1
enabled = false
"""


def birth(text: str = CONFIG) -> dict:
    the_plan = plan(parse_config(text, "agent.toml"), "agent.toml")
    config = the_plan.config
    box = Box(config.device_id, "1.2.3", "10000000cafe", config.sha256(), config.location)
    cameras = [CameraEntry("street", 60.0, ("door",), ("kerb", "bench"))]
    identities = {"pm": {"firmware": "18-11-16", "device_id": "a160"}}
    return json.loads(birth_payload(box, the_plan.sensors, cameras, identities))


def test_it_names_the_box_its_place_and_every_enabled_sensor_with_units() -> None:
    body = birth()
    assert body["device_id"] == "nl-utrecht-0042" and body["agent_version"] == "1.2.3"
    assert body["box_serial"] == "10000000cafe"
    assert body["location"] == {"latitude": 52.0907, "longitude": 5.1214, "height_m": 3.5,
                                "name": "Oudegracht 231"}
    sensors = {s["id"]: s for s in body["sensors"]}
    assert set(sensors) == {"pm", "climate"}, "a disabled sensor sends nothing"
    assert sensors["pm"]["model"] == "sds011" and sensors["pm"]["port"] == "/dev/ttyUSB0"
    assert sensors["pm"]["window_s"] == 300 and sensors["pm"]["humidity_corrected"] is True
    assert sensors["pm"]["quantities"]["pm2_5"] == "ug/m3"
    assert (sensors["climate"]["bus"], sensors["climate"]["address"]) == (1, 0x76)
    assert sensors["pm"]["identity"] == {"firmware": "18-11-16", "device_id": "a160"}
    assert sensors["climate"]["identity"] == {}, "not identified (yet)"
    assert sensors["climate"]["quantities"]["temperature"] == "Cel"
    assert body["cameras"] == [{"id": "street", "interval_s": 60.0, "lines": ["door"],
                                "zones": ["kerb", "bench"]}]
    assert birth_topic("lokaalmeten", "nl-utrecht-0042") == "lokaalmeten/nl-utrecht-0042/birth"


def test_the_config_hash_follows_settings_not_comments_or_layout() -> None:
    same = CONFIG.replace('model = "sds011"', '# the PM sensor\nmodel   =   "sds011"')
    other = CONFIG.replace("window_s = 300", "window_s = 600")
    assert birth(same)["config_sha256"] == birth()["config_sha256"]
    assert birth(other)["config_sha256"] != birth()["config_sha256"]
    assert parse_config(CONFIG, "a.toml").sha256() == birth()["config_sha256"]


def test_a_box_without_a_location_says_so() -> None:
    start = CONFIG.index("[location]")
    assert birth(CONFIG[:start] + CONFIG[CONFIG.index("[sensors.pm]"):])["location"] is None


def test_a_reload_resends_only_what_changed_and_the_birth_is_not_remembered(
        tmp_path: Path) -> None:
    topic = birth_topic("lokaalmeten", "box")
    state = tmp_path / "announced.json"
    first = Announcement({"ha/x/config": b"{}"}, {}, {}, standing={topic: b'{"v":1}'})
    announcer = Announcer(state, first)
    assert announcer.pending() == [(topic, b'{"v":1}'), ("ha/x/config", b"{}")]
    announcer.update(first)
    assert announcer.pending() == [], "the same announcement again sends nothing"
    announcer.update(Announcement({"ha/x/config": b"{}"}, {}, {},
                                  standing={topic: b'{"v":2}'}))
    assert announcer.pending() == [(topic, b'{"v":2}')], "only the changed birth message"
    announcer.new_connection()
    assert len(announcer.pending()) == 2, "a new connection gets everything again"
    assert topic not in state.read_text(), "never removed, so never remembered"
    alone = Announcer(tmp_path / "alone.json", Announcement({}, {}, {}, standing={topic: b"{}"}))
    assert alone.pending() == [(topic, b"{}")]
    assert not (tmp_path / "alone.json").exists(), "no file for a box without Home Assistant"
