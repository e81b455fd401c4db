"""A whole box scanned through ``SimulatedBuses``: everything found, nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import parse_config
from agent.emulators.simulation import SimulatedBuses
from agent.scan import PortChoice, SerialTiming, run_scan
from agent.scan.i2c import FAMILY_OF, READ_ONLY_WRITES
from agent.scan.report import render_snippet

BOX = """
device_id = "scan-box"
[sensors.pm]
model = "sds011"
port = "/dev/ttyUSB0"
[sensors.noise]
model = "modbus_noise_rs_zs_n01"
port = "/dev/ttyUSB1"
[sensors.sps]
model = "sps30"
[sensors.co2]
model = "scd41"
[sensors.ndir]
model = "scd30"
[sensors.climate]
model = "bme280"
[sensors.rh]
model = "sht3x"
[sensors.dnms]
model = "dnms"
[sensors.db]
model = "pcba_dbm"
[sensors.air]
model = "sen54"
bus = 3
[sensors.rh2]
model = "sht4x"
bus = 3
address = 0x45
[sensors.baro]
model = "bmp280"
bus = 3
address = 0x77
"""
TIMING = SerialTiming(sds011_listen_s=1.2, pms_listen_s=1.2, quiet_listen_s=0.1,
                      reply_timeout_s=0.3, modbus_timeout_s=0.3)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[tuple[SimulatedBuses, dict, list]]:
    config = parse_config(BOX, "<box>")
    sensors = config.resolved_sensors()
    buses = SimulatedBuses(tmp_path)
    devices = {s.sensor_id: buses.add(s.profile, port=s.config.port, bus=s.bus,
                                      address=s.address) for s in sensors}
    yield buses, devices, sensors
    buses.close()


def sent_writes(device: object) -> set[bytes]:
    """What reached an I2C emulator, whichever way it records it."""
    if hasattr(device, "writes"):
        return set(device.writes)
    if hasattr(device, "commands"):
        return {code.to_bytes(2 if code > 0xFF else 1, "big") for code in device.commands}
    return {data for kind, data in device.log if kind == "w"}


@pytest.mark.slow  # a whole simulated box; its serial ports are pseudo-terminals read in real time
def test_every_sensor_found_and_left_alone(box) -> None:
    buses, devices, sensors = box
    climate = devices["climate"]
    report = run_scan(buses, i2c_buses=[1, 3],
                      ports=[PortChoice("/dev/ttyUSB0"), PortChoice("/dev/ttyUSB1")],
                      timing=TIMING)
    found = {(f.bus, f.address) if f.kind == "i2c" else f.port: f for f in report.findings}
    for sensor in sensors:
        key = sensor.config.port or (sensor.bus, sensor.address)
        assert found[key].model == sensor.profile.model, sensor.sensor_id
    assert len(report.findings) == len(sensors) and not report.problems
    assert not report.silent_ports

    for sensor in sensors:
        family = FAMILY_OF.get(sensor.profile.model)
        if family is not None and sensor.profile.model not in ("bme280", "bmp280"):
            assert sent_writes(devices[sensor.sensor_id]) <= READ_ONLY_WRITES[family] | {b""}
    assert [(c[2], c[3]) for c in devices["pm"].commands] == [(7, 0)]
    assert not devices["pm"].query_mode and devices["pm"].working
    assert devices["co2"].state == "idle" and devices["air"].state == "idle"
    assert devices["sps"].state == "idle" and devices["ndir"].measuring is False
    for bosch in (climate, devices["baro"]):
        assert bosch.conversions == 0 and bosch.mode == 0
    assert not devices["dnms"].audio_running
    assert all(r[1] == 0x03 for r in devices["noise"].requests)

    snippet = render_snippet(report, {s.profile.model: s.profile for s in sensors})
    pasted = parse_config('device_id = "x"\n' + snippet, "<snippet>").resolved_sensors()
    assert sorted((s.profile.model, s.bus, s.address, s.config.port) for s in pasted) == \
        sorted((s.profile.model, s.bus, s.address, s.config.port) for s in sensors)


def test_unavailable_bus_and_port_are_reported(box) -> None:
    buses, _, _ = box
    report = run_scan(buses, i2c_buses=[2], ports=[PortChoice("/dev/ttyNOPE")], timing=TIMING)
    assert report.findings == ()
    assert {p.where for p in report.problems} == {"i2c-2", "/dev/ttyNOPE"}


def test_i2c_only_scan_skips_serial(box) -> None:
    buses, _, _ = box
    lines: list[str] = []
    report = run_scan(buses, i2c_buses=[3], ports=[], timing=TIMING, progress=lines.append)
    assert {f.model for f in report.findings} == {"sen54", "sht4x", "bmp280"}
    assert any("no ports to scan" in line for line in lines)
