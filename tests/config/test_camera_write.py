"""Saving lines and zones into the config file: round trip, comments kept, rejection."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent.cli import main
from agent.config import load_config
from agent.config.camera import LineConfig, ZoneConfig
from agent.config.camera_write import (
    PROPOSAL_FILE,
    Geometry,
    ReadOnlyConfig,
    apply_proposal,
    propose,
    write_geometry,
)
from agent.errors import ConfigError
from agent.status.camera_setup import CameraSetup

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
    write_geometry(config, Geometry(camera="square", lines=[LINE], zones=[ZONE]), validate)
    camera = load_config(config).cameras["square"]
    assert camera.lines == [LINE] and camera.zones == [ZONE]
    assert camera.setup.min_people == 4 and camera.suppress_below == 3
    text = config.read_text()
    for kept in ("# the box at the square", "# its name", "# the camera", "# kept"):
        assert kept in text
    assert "old" not in text
    assert os.stat(config).st_mode & 0o777 == 0o640
    assert [p.name for p in config.parent.iterdir()] == ["agent.toml"]
    write_geometry(config, Geometry(camera="square", lines=[], zones=[]), validate)
    camera = load_config(config).cameras["square"]
    assert camera.lines == [] and camera.zones == []


def test_a_rejected_edit_leaves_the_file_alone(config: Path) -> None:
    alert = ZoneConfig(name="busy", polygon=[(0, 0), (9, 0), (9, 9)], area_m2=1,
                       density_on=1, density_off=0.5)  # fires on 1 person: below k
    with pytest.raises(ConfigError) as refused:
        write_geometry(config, Geometry(camera="square", lines=[LINE], zones=[alert]), validate)
    assert refused.value.source == str(config)
    assert refused.value.problems[0][0] == "cameras.square"
    assert "suppress_below" in refused.value.problems[0][1]
    clash = LINE.model_copy(update={"name": "terrace"})
    with pytest.raises(ConfigError, match="unique"):
        write_geometry(config, Geometry(camera="square", lines=[clash], zones=[ZONE]), validate)
    assert config.read_text() == ORIGINAL
    assert [p.name for p in config.parent.iterdir()] == ["agent.toml"]


def test_an_unknown_camera_is_named(config: Path) -> None:
    with pytest.raises(ConfigError, match=r"cameras\.street: no such camera section"):
        write_geometry(config, Geometry(camera="street", lines=[LINE], zones=[]), validate)
    assert config.read_text() == ORIGINAL


@pytest.fixture
def read_only_config(tmp_path: Path) -> Iterator[Path]:
    """The config on a file system mounted read-only, like /etc under ProtectSystem=strict."""
    etc = tmp_path / "etc"
    etc.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(etc)], check=True)
    try:
        (etc / "agent.toml").write_text(ORIGINAL)
        subprocess.run(["mount", "-o", "remount,ro", str(etc)], check=True)
        yield etc / "agent.toml"
    finally:
        subprocess.run(["umount", str(etc)], check=True)


def test_a_read_only_config_is_proposed_and_root_applies_only_the_geometry(
        read_only_config: Path, tmp_path: Path) -> None:
    geometry = Geometry(camera="square", lines=[LINE], zones=[ZONE])
    with pytest.raises(ReadOnlyConfig):
        write_geometry(read_only_config, geometry, validate)
    proposal = tmp_path / PROPOSAL_FILE
    propose(proposal, read_only_config, geometry, validate)
    assert read_only_config.read_text() == ORIGINAL
    assert Geometry.model_validate_json(proposal.read_text()) == geometry
    assert sorted(p.name for p in tmp_path.iterdir()) == ["etc", PROPOSAL_FILE]
    writable = tmp_path / "agent.toml"  # root's view of /etc: writable
    writable.write_text(ORIGINAL)
    assert apply_proposal(proposal, writable, validate)
    camera = load_config(writable).cameras["square"]
    assert camera.lines == [LINE] and camera.zones == [ZONE]
    assert "# the box at the square" in writable.read_text()
    assert not proposal.exists()
    assert not apply_proposal(proposal, writable, validate), "nothing left to apply"


def test_a_proposal_cannot_carry_anything_but_lines_and_zones(tmp_path: Path,
                                                             config: Path) -> None:
    proposal = tmp_path / PROPOSAL_FILE
    proposal.write_text('{"camera": "square", "lines": [], "zones": [], '
                        '"suppress_below": 0}')
    with pytest.raises(ConfigError, match="suppress_below"):
        apply_proposal(proposal, config, validate)
    assert config.read_text() == ORIGINAL and not proposal.exists()


def test_a_proposal_the_validation_refuses_leaves_the_config_alone(
        tmp_path: Path, config: Path) -> None:
    proposal = tmp_path / PROPOSAL_FILE
    clash = LINE.model_copy(update={"name": "terrace"})
    proposal.write_text(Geometry(camera="square", lines=[clash], zones=[ZONE])
                        .model_dump_json())
    with pytest.raises(ConfigError, match="unique"):
        apply_proposal(proposal, config, validate)
    assert config.read_text() == ORIGINAL and not proposal.exists()


def test_apply_setup_on_the_command_line(tmp_path: Path, config: Path) -> None:
    proposal = tmp_path / "proposal.json"
    proposal.write_text(Geometry(camera="square", lines=[LINE], zones=[]).model_dump_json())
    assert main(["apply-setup", "--config", str(config), "--proposal", str(proposal)]) == 0
    assert load_config(config).cameras["square"].lines == [LINE]
    assert main(["apply-setup", "--config", str(config), "--proposal", str(proposal)]) == 0
    proposal.write_text('{"camera": "square", "lines": [], "zones": [], "x": 1}')
    assert main(["apply-setup", "--config", str(config), "--proposal", str(proposal)]) == 2


def test_the_page_proposes_when_the_config_is_read_only(read_only_config: Path,
                                                        tmp_path: Path) -> None:
    camera = SimpleNamespace(camera_id="square",
                             config=load_config(read_only_config).cameras["square"])
    reloads: list[bool] = []
    proposal = tmp_path / PROPOSAL_FILE
    setup = CameraSetup(lambda: [camera], read_only_config, validate,
                        lambda: reloads.append(True), lambda: 0.0, proposal=proposal)
    body = Geometry(camera="square", lines=[LINE], zones=[ZONE]).model_dump_json().encode()
    status, answer = setup.setup_post("save", body)
    assert status == HTTPStatus.ACCEPTED, answer
    assert json.loads(answer)["proposed"] == str(proposal)
    assert Geometry.model_validate_json(proposal.read_text()).lines == [LINE]
    assert reloads == [], "the service that applies it reloads the agent"
    without = CameraSetup(lambda: [camera], read_only_config, validate,
                          lambda: reloads.append(True), lambda: 0.0)
    status, answer = without.setup_post("save", body)
    assert status == HTTPStatus.BAD_REQUEST and b"Read-only file system" in answer
