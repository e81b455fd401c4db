"""Home Assistant discovery: every config we can produce, judged by Home Assistant's code.

The configs go through ``homeassistant.components.mqtt`` (2025.4, from PyPI, in its own
venv: tests/homeassistant_peer.py) exactly as its discovery handles a message, then
through its device-class unit and state-class tables; a unit Home Assistant would
refuse fails here. The end-to-end test with a running instance is
tests/integration/test_home_assistant.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.config.profiles import all_profiles
from agent.models import Measurement, OutboxRecord, Stats
from agent.publish.discovery import Announcer
from agent.publish.homeassistant import (
    QUANTITIES,
    Box,
    SensorDevice,
    announcement,
    discovery_configs,
    ha_quantity,
)
from tests.homeassistant_peer import check_discovery

BOX = Box("nl.utrecht-0042", "lokaalmeten", "homeassistant", "0.1.0", "10000000c0ffee42")


def every_sensor() -> list[SensorDevice]:
    """One sensor of every supported model, humidity-corrected PM included."""
    return [SensorDevice(model, profile, corrected=True, serial="A1B2", firmware="2.2")
            for model, profile in all_profiles().items()]


def test_every_profile_quantity_is_announced() -> None:
    missing = [(model, q.name, q.unit) for model, profile in all_profiles().items()
               for q in profile.quantities if ha_quantity(q.name, q.unit) is None]
    assert missing == [], "add them to QUANTITIES in agent/publish/homeassistant.py"


def test_a_quantity_sent_in_another_unit_is_not_announced() -> None:
    assert ha_quantity("pressure", "hPa") is not None
    assert ha_quantity("pressure", "Pa") is None  # the table says hPa: never mislabel


@pytest.mark.slow  # Home Assistant's own code, run in its venv
def test_home_assistant_accepts_every_config(home_assistant_python: Path) -> None:
    configs = discovery_configs(BOX, every_sensor())
    assert len(configs) == 1 + sum(len(p.quantities) for p in all_profiles().values()) + \
        sum(1 for p in all_profiles().values() for q in p.quantities if q.unit == "ug/m3")
    problems = check_discovery(home_assistant_python, BOX.discovery_prefix, configs)
    assert set(problems) == set(configs)
    assert {topic: found for topic, found in problems.items() if found} == {}
    unique_ids = [json.loads(payload)["unique_id"] for payload in configs.values()]
    assert len(unique_ids) == len(set(unique_ids))


@pytest.mark.slow  # Home Assistant's own code, run in its venv
def test_the_check_catches_what_home_assistant_would_refuse(home_assistant_python: Path
                                                            ) -> None:
    """The guard above is only worth something if it fails on the faults it is for."""
    good = json.loads(discovery_configs(BOX, every_sensor()[:1])
                      ["homeassistant/sensor/lokaalmeten_nl_utrecht-0042/bme280_pressure/config"])
    planted = {
        "homeassistant/sensor/n/ucum_unit/config": {**good, "unit_of_measurement": "ug/m3",
                                                    "device_class": "pm25"},
        "homeassistant/sensor/n/pa_as_hpa/config": {**good, "unit_of_measurement": "hPa/10"},
        "homeassistant/sensor/n/typo/config": {**good, "unit_of_measurment": "hPa"},
        "homeassistant/sensor/n/device/config": {**good, "device": {"identifiers": ["x"],
                                                                    "serial": "1"}},
        "homeassistant/sensor/n.dot/level/config": good,
        "homeassistant/sensor/n/pm4/config": {**good, "device_class": "pm4"},
        "homeassistant/sensor/n/total/config": {**good, "state_class": "total_increasing"},
    }
    problems = check_discovery(home_assistant_python, "homeassistant",
                               {t: json.dumps(c).encode() for t, c in planted.items()})
    assert [t for t, found in problems.items() if not found] == []


def test_sound_levels_carry_their_weighting() -> None:
    assert (QUANTITIES["laeq"].unit, QUANTITIES["lceq"].unit) == ("dBA", "dB")
    assert QUANTITIES["la90"].device_class == "sound_pressure"


def record(row_id: int, sensor: str, quantity: str, value: float) -> OutboxRecord:
    return OutboxRecord(row_id, "boot", row_id, Measurement(
        sensor, quantity, value, "ug/m3", 1_800_000_000_000 + row_id, 0.0,
        stats=Stats(value - 1, value + 1, 5, 60.0)))


def test_a_backlog_publishes_the_newest_window_per_quantity_only() -> None:
    profile = all_profiles()["sds011"]
    wanted = announcement(BOX, [SensorDevice("pm", profile)])
    records = [record(1, "pm", "pm2_5", 10.0), record(2, "pm", "pm10", 20.0),
               record(3, "pm", "pm2_5", 11.0), record(4, "agent", "uptime", 5.0),
               record(5, "other", "pm2_5", 99.0)]
    states = dict(wanted.state_messages(records))
    assert set(states) == {"lokaalmeten/nl.utrecht-0042/state/pm/pm2_5",
                           "lokaalmeten/nl.utrecht-0042/state/pm/pm10"}
    latest = json.loads(states["lokaalmeten/nl.utrecht-0042/state/pm/pm2_5"])
    assert (latest["value"], latest["seq"], latest["window_s"]) == (11, 3, 60.0)


def sds011() -> list[SensorDevice]:
    return [SensorDevice("pm", all_profiles()["sds011"])]


def test_a_sensor_that_leaves_the_config_is_removed_even_after_a_restart(tmp_path: Path
                                                                         ) -> None:
    path = tmp_path / "home-assistant.json"
    both = announcement(BOX, [*sds011(), SensorDevice("climate", all_profiles()["bme280"])])
    first = Announcer(path, both)
    sent = first.pending()
    assert dict(sent) == dict(both.configs)
    assert first.pending() == []  # once per connection
    climate = {t for t in both.configs if "/climate_" in t}
    assert climate <= set(json.loads(path.read_text())["announced"])  # before publishing

    again = Announcer(path, announcement(BOX, sds011()))  # restarted without "climate"
    removals = dict(again.pending())
    emptied = {t for t, payload in removals.items() if payload == b""}
    assert climate <= emptied
    assert "lokaalmeten/nl.utrecht-0042/state/climate/temperature" in emptied
    for topic in climate:
        again.confirmed(topic, b"")
    assert not climate & set(json.loads(path.read_text())["announced"])
    assert Announcer(path, announcement(BOX, sds011())).pending() == \
        list(announcement(BOX, sds011()).configs.items())


def test_an_unconfirmed_removal_is_sent_again_on_the_next_connection(tmp_path: Path) -> None:
    path = tmp_path / "home-assistant.json"
    Announcer(path, announcement(BOX, sds011())).pending()
    gone = Announcer(path)  # [mqtt.home_assistant] disabled or removed
    first = gone.pending()
    assert first and all(payload == b"" for _, payload in first)
    gone.new_connection()  # no PUBACK came: the connection dropped
    assert gone.pending() == first


@pytest.mark.parametrize("device_id", ["box-1", "nl.utrecht.7"])
def test_discovery_topics_use_only_what_home_assistant_matches(device_id: str) -> None:
    box = Box(device_id, "lokaalmeten", "homeassistant", "0.1.0")
    for topic in discovery_configs(box, sds011()):
        node = topic.split("/")[2]
        assert node.replace("_", "").replace("-", "").isalnum()
