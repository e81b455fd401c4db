"""What a reload restarts, and what it refuses (the daemon itself: tests/integration)."""

from __future__ import annotations

import pytest

from agent.config import AgentConfig, parse_config
from agent.errors import ConfigError
from agent.reload import changes, refuse_fixed_settings

BASE = """device_id = "box"
[mqtt]
host = "broker.example"
[sensors.pm]
model = "sds011"
port = "/dev/ttyUSB0"
[cameras.door]
source = "0"
"""


def config(text: str = BASE, **replace: str) -> AgentConfig:
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return parse_config(text, "box.toml")


def test_the_same_file_restarts_nothing() -> None:
    change = changes(config(), config())
    assert not change and change.describe() == ""


def test_a_new_sensor_restarts_the_sampler_and_the_page_only() -> None:
    change = changes(config(), config(BASE + '[sensors.climate]\nmodel = "bme280"\n'))
    assert change.sensors and change.status
    assert not change.broker and change.cameras == frozenset() and not change.log_level
    assert change.describe() == "sensors, status page"


def test_a_broker_change_reconnects_and_nothing_else() -> None:
    change = changes(config(), config(**{'host = "broker.example"': 'host = "other.example"'}))
    assert change.broker and not change.sensors and not change.status
    assert change.describe() == "broker"


def test_one_camera_changed_restarts_that_counter_alone() -> None:
    two = BASE + '[cameras.yard]\nsource = "1"\n'
    change = changes(config(two), config(two, **{'source = "1"': 'source = "2"'}))
    assert change.cameras == {"yard"} and not change.status, "same cameras on the page"
    added = changes(config(), config(two))
    assert added.cameras == {"yard"} and added.status
    disabled = changes(config(two), config(two + "enabled = false\n"))
    assert disabled.cameras == {"yard"} and disabled.status


def test_a_new_log_level_respawns_counters_with_it() -> None:
    change = changes(config(), config('log_level = "DEBUG"\n' + BASE))
    assert change.log_level and change.cameras == {"door"} and not change.sensors


def test_device_id_and_storage_need_a_restart() -> None:
    new = config(BASE.replace('"box"', '"box-2"') + "[storage]\nmax_rows = 500\n")
    with pytest.raises(ConfigError) as caught:
        refuse_fixed_settings(config(), new, "box.toml")
    keys = [key for key, _ in caught.value.problems]
    assert keys == ["device_id", "storage.max_rows"]
    assert "box.toml: device_id: changed from 'box'" in str(caught.value)
    assert "systemctl restart" in str(caught.value)
    refuse_fixed_settings(config(), config(BASE + '[sensors.x]\nmodel = "bme280"\n'), "box.toml")
