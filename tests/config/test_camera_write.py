"""Saving lines and zones into the config file: round trip, comments kept, rejection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.config import load_config
from agent.config.camera import LineConfig, ZoneConfig
from agent.config.camera_write import write_geometry
from agent.errors import ConfigError

ORIGINAL = """# the box at the square
device_id = "box"   # its name

[cameras.square]
source = "/dev/video0"  # the camera
suppress_below = 3

[[cameras.square.lines]]
name = "old"  # to be replaced
x1 = 0
y1 = 0
x2 = 10
y2 = 10

[cameras.square.setup]
min_people = 4

[status]
port = 8471  # kept
"""
LINE = LineConfig(name="door", x1=12.5, y1=40, x2=300, y2=41)
ZONE = ZoneConfig(name="terrace", polygon=[(0, 0), (100, 0), (100, 50)], area_m2=20)


def validate(path: Path) -> None:
    load_config(path)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(ORIGINAL)
    path.chmod(0o640)
    return path


def test_round_trip_keeps_everything_else(config: Path) -> None:
    write_geometry(config, "square", [LINE], [ZONE], validate)
    camera = load_config(config).cameras["square"]
    assert camera.lines == [LINE] and camera.zones == [ZONE]
    assert camera.setup.min_people == 4 and camera.suppress_below == 3
    text = config.read_text()
    for kept in ("# the box at the square", "# its name", "# the camera", "# kept"):
        assert kept in text
    assert "old" not in text
    assert os.stat(config).st_mode & 0o777 == 0o640
    assert [p.name for p in config.parent.iterdir()] == ["agent.toml"]
    write_geometry(config, "square", [], [], validate)
    camera = load_config(config).cameras["square"]
    assert camera.lines == [] and camera.zones == []


def test_a_rejected_edit_leaves_the_file_alone(config: Path) -> None:
    alert = ZoneConfig(name="busy", polygon=[(0, 0), (9, 0), (9, 9)], area_m2=1,
                       density_on=1, density_off=0.5)  # fires on 1 person: below k
    with pytest.raises(ConfigError) as refused:
        write_geometry(config, "square", [LINE], [alert], validate)
    assert refused.value.source == str(config)
    assert refused.value.problems[0][0] == "cameras.square"
    assert "suppress_below" in refused.value.problems[0][1]
    clash = LINE.model_copy(update={"name": "terrace"})
    with pytest.raises(ConfigError, match="unique"):
        write_geometry(config, "square", [clash], [ZONE], validate)
    assert config.read_text() == ORIGINAL
    assert [p.name for p in config.parent.iterdir()] == ["agent.toml"]


def test_an_unknown_camera_is_named(config: Path) -> None:
    with pytest.raises(ConfigError, match=r"cameras\.street: no such camera section"):
        write_geometry(config, "street", [LINE], [], validate)
    assert config.read_text() == ORIGINAL
