"""``[sinks.sensor_community]``: check-config names file, key and reason, and says what to
register; the node id is the Pi's CPU serial unless configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import main
from agent.config import parse_config
from agent.errors import ConfigError
from agent.health.system import cpu_serial
from agent.reload import refuse_fixed_settings

BASE = """
device_id = "nl-ut-0001"
[sensors.pm]
model = "sds011"
port = "/dev/ttyUSB0"
window_s = 150
[sensors.climate]
model = "bme280"
bus = 1
interval_s = 60
window_s = 180
[sensors.sps]
model = "sps30"
bus = 1
interval_s = 10
window_s = 30
[sensors.rh]
model = "sht4x"
bus = 1
"""


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], sink: str) -> tuple[int, str, str]:
    path = tmp_path / "agent.toml"
    path.write_text(BASE + "[sinks.sensor_community]\n" + sink)
    code = main(["check-config", "--config", str(path)])
    out, err = capsys.readouterr()
    return code, out, err.replace(f"{path}: ", "FILE: ")


def test_check_config_says_which_node_and_pins_to_register(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(tmp_path, capsys,
                           'node_id = "raspi-10000000a3b2c1d0"\nsensors = ["pm", "climate"]\n')
    assert code == 0, err
    assert "Sensor.Community node raspi-10000000a3b2c1d0: pm on pin 1, climate on pin 11" in out
    assert err == "", "windows of 150 s and 180 s push about as often as a node does"


@pytest.mark.parametrize(("sink", "key", "reason"), [
    ('sensors = ["pm", "nosuch"]', "sinks.sensor_community.sensors[1]",
     "no enabled sensor 'nosuch'"),
    ('sensors = ["rh"]', "sinks.sensor_community.sensors[0]",
     "'rh' (sht4x) has no Sensor.Community sensor type"),
    ('sensors = ["pm", "sps"]', "sinks.sensor_community.sensors[1]",
     "'sps' and 'pm' would share X-Pin 1"),
    ('sensors = []', "sinks.sensor_community.sensors", "at least 1 item"),
    ('sensors = ["pm"]\nnode_id = "raspi 1"', "sinks.sensor_community.node_id",
     "1-50 letters, digits"),
    ('sensors = ["pm"]\nretry_min_s = 60\nretry_max_s = 10', "sinks.sensor_community",
     "retry_max_s must be at least retry_min_s"),
    ('sensors = ["pm"]\nurl = "ftp://x"', "sinks.sensor_community.url", "URL scheme"),
    ('sensors = ["pm"]\nnode = "x"', "sinks.sensor_community.node", "unknown key"),
])
def test_each_mistake_is_refused_with_file_key_and_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], sink: str, key: str,
        reason: str) -> None:
    code, _, err = check(tmp_path, capsys, sink + "\n")
    assert code == 2
    assert any(line.startswith(f"FILE: {key}: ") and reason in line
               for line in err.splitlines()), err


def test_a_short_window_draws_a_warning(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = check(tmp_path, capsys, 'node_id = "n-1"\nsensors = ["sps"]\n')
    assert code == 0
    assert "warning: FILE: sensors.sps.window_s: pushed to Sensor.Community every 30 s" in err


@pytest.mark.skipif(cpu_serial() is not None, reason="a Raspberry Pi: it has a CPU serial")
def test_without_a_cpu_serial_the_node_id_must_be_configured(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = check(tmp_path, capsys, 'sensors = ["pm"]\n')
    assert code == 2
    assert "FILE: sinks.sensor_community.node_id: this machine has no Raspberry Pi CPU " \
           "serial" in err


def test_the_cpu_serial_comes_from_cpuinfo_or_the_device_tree(tmp_path: Path) -> None:
    cpuinfo, tree = tmp_path / "cpuinfo", tmp_path / "serial-number"
    cpuinfo.write_text("processor\t: 0\nHardware\t: BCM2835\nSerial\t\t: 10000000A3B2C1D0\n"
                       "Model\t\t: Raspberry Pi 4 Model B Rev 1.4\n")
    assert cpu_serial(cpuinfo, tree) == "10000000a3b2c1d0"
    cpuinfo.write_text("processor\t: 0\nSerial\t\t: 0000000000000000\n")
    tree.write_bytes(b"00000000c0ffee42\x00")
    assert cpu_serial(cpuinfo, tree) == "00000000c0ffee42", "a zero serial is no serial"
    tree.unlink()
    assert cpu_serial(cpuinfo, tree) is None


def test_a_reload_cannot_change_the_sinks() -> None:
    """The open outbox keeps a position per configured sink: that takes a restart."""
    old = parse_config(BASE, "agent.toml")
    new = parse_config(BASE + '[sinks.sensor_community]\nnode_id = "n-1"\nsensors = ["pm"]\n',
                       "agent.toml")
    with pytest.raises(ConfigError) as refused:
        refuse_fixed_settings(old, new, "agent.toml")
    assert [key for key, _ in refused.value.problems] == ["sinks"]
    assert "restart" in refused.value.problems[0][1]
