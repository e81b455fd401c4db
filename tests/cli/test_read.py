"""``lokaalmeten read`` against emulated sensors, as an installer checks wiring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main

SIMULATED = Path(__file__).resolve().parents[2] / "examples" / "simulated.toml"


@pytest.mark.parametrize(("sensor", "quantities"), [
    ("climate", {"temperature": "Cel", "relative_humidity": "%", "pressure": "hPa"}),
    ("pm", {"pm2_5": "ug/m3", "pm10": "ug/m3"}),
])
def test_read_prints_json_lines_with_units(sensor: str, quantities: dict[str, str],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["read", "--config", str(SIMULATED), "--sensor", sensor, "--count", "2",
                 "--interval", "0.2", "--json", "--simulate"])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 * len(quantities)
    for line in lines:
        assert line["sensor"] == sensor
        assert quantities[line["quantity"]] == line["unit"]
        assert isinstance(line["value"], float)


def test_read_unknown_sensor_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["read", "--config", str(SIMULATED), "--sensor", "nope", "--simulate"]) == 2
    assert "no enabled sensor 'nope'" in capsys.readouterr().err


def test_read_on_absent_hardware_fails_cleanly(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "box.toml"
    config.write_text('device_id = "x"\n[sensors.pm]\nmodel = "sds011"\n'
                      f'port = "{tmp_path}/no-such-tty"\n')
    assert main(["read", "--config", str(config), "--sensor", "pm"]) == 1
    assert "cannot open" in capsys.readouterr().err
