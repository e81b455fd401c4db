"""Table, snippet and JSON: the snippet must be a valid config section as printed."""

from __future__ import annotations

import json

import pytest

from agent.config import parse_config
from agent.config.profiles import all_profiles
from agent.scan.findings import Finding, Identity, Problem, ScanReport, State
from agent.scan.report import (
    assign_ids,
    render_snippet,
    render_table,
    sensor_id_base,
    to_json,
)

PROFILES = all_profiles()
BY_ID = "/dev/serial/by-id/usb-Silicon_Labs_CP2102_\"quoted\"-if00-port0"


def i2c(model: str | None, address: int, bus: int | str = 1, **kwargs) -> Finding:
    return Finding("i2c", Identity(model, **kwargs), bus=bus, address=address)


def port(model: str | None, name: str, baud: int, **kwargs) -> Finding:
    return Finding("serial", Identity(model, **kwargs), port=name, baudrate=baud,
                   port_aliases=("/dev/ttyUSB0",))


REPORT = ScanReport(
    findings=(
        port("sds011", BY_ID, 9600, facts={"device_id": "a160", "firmware": "15-07-10"}),
        i2c("sps30", 0x69, facts={"serial": "3E5F", "firmware": "2.2"}),
        i2c("scd40", 0x62, state=State.MEASURING, alternatives=("scd41",),
            notes=("present (measuring; identity not read)",)),
        i2c("bmp280", 0x77, bus="/dev/i2c-3", facts={"chip_id": "0x58"}),
        i2c("bme280", 0x76),
        i2c("sht4x", 0x46, bus=3),
        i2c(None, 0x48, state=State.UNKNOWN, notes=("unknown device", "VERSION 0x85")),
        port("pms5003", "/dev/serial0", 9600, alternatives=("pms7003", "pmsa003")),
        port("modbus_noise_rs_zs_n01", "/dev/ttyUSB1", 4800, facts={"sound_level": "62.1"}),
    ),
    problems=(Problem("i2c-2", "cannot open"),),
    silent_ports=("/dev/ttyUSB3",),
)


def test_snippet_round_trips_through_the_config_parser() -> None:
    snippet = render_snippet(REPORT, PROFILES)
    config = parse_config('device_id = "scan-test"\n' + snippet, "<snippet>")
    sensors = config.sensors
    assert list(sensors) == ["pm", "pm-sps30", "co2", "pressure", "climate", "climate-sht4x",
                             "pm-pms5003", "noise"]
    assert sensors["pm"].model == "sds011" and sensors["pm"].port == BY_ID
    assert sensors["co2"].model == "scd40" and sensors["co2"].bus == 1
    assert sensors["pressure"].bus == "/dev/i2c-3" and sensors["pressure"].address == 0x77
    assert sensors["climate"].address is None  # the profile's default 0x76 is not repeated
    assert sensors["climate-sht4x"].address == 0x46
    assert sensors["noise"].model == "modbus_noise_rs_zs_n01"
    assert '  # or: scd41' in snippet and "# or: pms7003, pmsa003" in snippet
    assert "# same port as /dev/ttyUSB0" in snippet
    assert "#   i2c-1 0x48: unknown device; VERSION 0x85" in snippet


def test_resolved_snippet_sensors_open_where_they_were_found() -> None:
    snippet = render_snippet(REPORT, PROFILES)
    resolved = {s.sensor_id: s for s in parse_config('device_id = "x"\n' + snippet,
                                                     "<snippet>").resolved_sensors()}
    assert (resolved["pm-sps30"].bus, resolved["pm-sps30"].address) == (1, 0x69)
    assert resolved["climate"].address == 0x76
    assert resolved["noise"].baudrate == 4800


def test_empty_report_snippet_still_parses() -> None:
    snippet = render_snippet(ScanReport(), PROFILES)
    assert "no supported sensor found" in snippet
    assert parse_config('device_id = "x"\n' + snippet, "<snippet>").sensors == {}


@pytest.mark.parametrize(("model", "base"), [
    ("sds011", "pm"), ("sen55", "pm"), ("scd30", "co2"), ("scd41", "co2"),
    ("bme280", "climate"), ("sht3x", "climate"), ("bmp280", "pressure"), ("dnms", "noise"),
    ("pcba_dbm", "noise"), ("modbus_wind_rs_fsjt_n01", "wind")])
def test_ids_say_what_is_measured(model: str, base: str) -> None:
    assert sensor_id_base(PROFILES[model]) == base


def test_ids_stay_unique_for_repeated_models() -> None:
    findings = tuple(i2c("sht4x", address) for address in (0x44, 0x45, 0x46))
    assert [name for name, _ in assign_ids(findings, PROFILES)] == [
        "climate", "climate-sht4x", "climate-2"]


def test_table_lists_every_device_problem_and_silent_port() -> None:
    table = render_table(REPORT)
    lines = table.splitlines()
    assert lines[0].split() == ["BUS/PORT", "ADDR/BAUD", "MODEL", "SERIAL/FIRMWARE", "NOTES"]
    assert any(BY_ID in line and "9600 bit/s" in line and "firmware 15-07-10" in line
               for line in lines)
    assert any("scd40 (or scd41) [measuring]" in line for line in lines)
    assert any("i2c-1" in line and "0x48" in line and "unknown device" in line
               for line in lines)
    assert "not scanned: i2c-2: cannot open" in table
    assert "silent: /dev/ttyUSB3" in table


def test_json_is_complete_and_serialisable() -> None:
    data = to_json(REPORT, "snippet")
    text = json.dumps(data)
    assert json.loads(text)["findings"][2]["state"] == "measuring"
    assert data["findings"][1]["identity"] == {"serial": "3E5F", "firmware": "2.2"}
    assert data["findings"][0]["port_aliases"] == ["/dev/ttyUSB0"]
    assert data["silent_ports"] == ["/dev/ttyUSB3"] and data["snippet"] == "snippet"
