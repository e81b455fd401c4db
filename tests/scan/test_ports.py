"""Port names: one scan per device, reported under its stablest name."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.scan import ports
from agent.scan.serial import PortChoice

BY_ID = "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0"


def test_by_id_name_wins_over_tty_name() -> None:
    links = {BY_ID: "/dev/ttyUSB0", "/dev/serial0": "/dev/ttyAMA0"}
    merged = ports.merge_ports(["/dev/ttyUSB0", "/dev/ttyAMA0", BY_ID, "/dev/serial0",
                                "/dev/ttyUSB0"], lambda name: links.get(name, name))
    assert merged == [PortChoice(BY_ID, ("/dev/ttyUSB0",)),
                      PortChoice("/dev/serial0", ("/dev/ttyAMA0",))]


def test_unrelated_ports_stay_apart_in_order() -> None:
    merged = ports.merge_ports(["/dev/ttyUSB1", "/dev/ttyUSB0"], lambda name: name)
    assert [choice.name for choice in merged] == ["/dev/ttyUSB1", "/dev/ttyUSB0"]


def test_discovery_adds_by_id_links_and_uart_alias(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    tty = tmp_path / "ttyUSB0"
    tty.touch()
    uart = tmp_path / "ttyAMA0"
    uart.touch()
    by_id = tmp_path / "serial" / "by-id"
    by_id.mkdir(parents=True)
    (by_id / "usb-FTDI_FT232R-if00-port0").symlink_to(tty)
    serial0 = tmp_path / "serial0"
    serial0.symlink_to(uart)
    monkeypatch.setattr(ports, "BY_ID_DIR", by_id)
    monkeypatch.setattr(ports, "PI_UART_ALIASES", (serial0, tmp_path / "serial1"))
    found = ports.discover_ports([str(tty)], [str(uart)])
    assert found == [PortChoice(str(by_id / "usb-FTDI_FT232R-if00-port0"), (str(tty),)),
                     PortChoice(str(uart), (str(serial0),))]


def test_no_devices_no_ports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "BY_ID_DIR", tmp_path / "absent")
    monkeypatch.setattr(ports, "PI_UART_ALIASES", (tmp_path / "serial0",))
    assert ports.discover_ports([], []) == []
