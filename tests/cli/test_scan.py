"""``lokaalmeten scan`` end to end: the simulated box, a small config, and real hardware."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import load_config, parse_config
from agent.scan import ports

SIMULATED = Path(__file__).resolve().parents[2] / "examples" / "simulated.toml"
I2C_BOX = """
device_id = "bench"
[sensors.co2]
model = "scd41"
[sensors.climate]
model = "bme280"
address = 0x77
[sensors.air]
model = "sen55"
bus = 3
"""


@pytest.fixture
def no_host_ports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the host's own /dev/serial/by-id and /dev/serial0 out of hardware-mode tests."""
    monkeypatch.setattr(ports, "BY_ID_DIR", tmp_path / "no-by-id")
    monkeypatch.setattr(ports, "PI_UART_ALIASES", ())


@pytest.mark.slow  # the PMS in the simulated box needs its 3 s listening window
def test_simulated_box_is_found_completely(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--simulate", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    found = {(f["bus"], f["address"]) if f["kind"] == "i2c" else f["port"]: f
             for f in data["findings"]}
    configured = [s for s in load_config(SIMULATED).resolved_sensors()
                  if s.profile.bus in ("i2c", "serial")]  # the scan has no audio devices
    for sensor in configured:
        finding = found[sensor.config.port or (sensor.bus, sensor.address)]
        assert finding["model"] == sensor.profile.model, sensor.sensor_id
    assert data["problems"] == [] and data["silent_ports"] == []
    pasted = parse_config('device_id = "x"\n' + data["snippet"], "<snippet>")
    assert sorted(s.profile.model for s in pasted.resolved_sensors()) == \
        sorted(s.profile.model for s in configured)


def test_simulated_i2c_config_prints_table_and_snippet(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bench.toml"
    config.write_text(I2C_BOX)
    assert main(["scan", "--simulate", "--config", str(config), "--bus", "7"]) == 0
    out = capsys.readouterr()
    table, _, snippet = out.out.partition("# Found by `lokaalmeten scan`")
    assert "i2c-1" in table and "scd41" in table and "f8969f073bbe" in table
    assert "0x77" in table and "bme280" in table and "sen55" in table
    assert "not scanned: i2c-7" in table
    assert "probing" in out.err
    pasted = parse_config('device_id = "x"\n# Found' + snippet, "<snippet>")
    assert {(s.model, s.address) for s in pasted.sensors.values()} == {
        ("scd41", None), ("bme280", 0x77), ("sen55", None)}


def test_hardware_scan_without_hardware_fails_cleanly(
        tmp_path: Path, no_host_ports: None, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "empty.toml"
    config.write_text('device_id = "x"\n')
    code = main(["scan", "--config", str(config), "--bus", str(tmp_path / "i2c-9"),
                 "--port", str(tmp_path / "ttyNONE"), "--json"])
    assert code == 1
    data = json.loads(capsys.readouterr().out)
    assert data["findings"] == []
    assert {p["where"] for p in data["problems"]} == {f"i2c-{tmp_path / 'i2c-9'}",
                                                      str(tmp_path / "ttyNONE")}


def test_invalid_config_is_a_config_error(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('device_id = "x"\n[sensors.pm]\nmodel = "nope"\n')
    assert main(["scan", "--simulate", "--config", str(config)]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


@pytest.mark.hardware
def test_real_box(capsys: pytest.CaptureFixture[str]) -> None:
    """On a box with sensors (LOKAALMETEN_HARDWARE=1): /dev/i2c-1 and the serial ports."""
    main(["scan", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["i2c_buses"] and all(f["model"] or f["notes"] for f in data["findings"])
    parse_config('device_id = "x"\n' + data["snippet"], "<snippet>")
