"""I2C identification against the emulators: right model, and nothing changed on the chip.

Every test checks both what the scan reports and what reached the device: only
the documented read-only writes (``READ_ONLY_WRITES``, plus the empty address-only
write), and no state change (measuring stays measuring, idle stays idle, registers
keep their values).
"""

from __future__ import annotations

import errno

import pytest

from agent.bus.i2c import I2CDevice
from agent.config.profiles import all_profiles
from agent.emulators.bme280 import Bme280Device, make_bme280, make_bmp280
from agent.emulators.dnms import DnmsDevice
from agent.emulators.i2c_bus import EmulatedI2CBus, Nack
from agent.emulators.pcba_dbm import PcbaDbmDevice
from agent.emulators.scd4x import DEFAULT_SERIAL, Scd4xDevice
from agent.emulators.scd30 import Scd30Device
from agent.emulators.sen5x import Sen5xDevice
from agent.emulators.sht3x import Sht3xDevice
from agent.emulators.sht4x import Sht4xDevice
from agent.emulators.sps30 import IDLE, MEASURING, SLEEP, Sps30Device
from agent.scan import i2c_targets
from agent.scan.findings import State
from agent.scan.i2c import FAMILY_OF, READ_ONLY_WRITES, families_for, probe_address, quick_write

TARGETS = i2c_targets(all_profiles().values())


def probe(device: object, address: int):
    bus = EmulatedI2CBus()
    bus.attach(address, device)  # type: ignore[arg-type]
    return probe_address(I2CDevice(bus, address), TARGETS[address]), bus


def writes(log: list[tuple[str, bytes]]) -> set[bytes]:
    return {data for kind, data in log if kind == "w"}


def allowed(*families: str) -> set[bytes]:
    out = {b""}
    for family in families:
        out |= READ_ONLY_WRITES[family]
    return out


def test_targets_come_from_the_profiles() -> None:
    assert TARGETS[0x69] == ["sen50", "sen54", "sen55", "sps30"]
    assert TARGETS[0x44] == ["sht3x", "sht4x"] and TARGETS[0x46] == ["sht4x"]
    assert TARGETS[0x62] == ["scd40", "scd41"]
    assert set(TARGETS[0x76]) == set(TARGETS[0x77]) == {"bme280", "bmp280"}
    assert {0x48, 0x55, 0x61} <= set(TARGETS)
    # Every I2C profile is served by a probe family, so none is only "unknown device".
    i2c_models = {p.model for p in all_profiles().values() if p.bus == "i2c"}
    assert i2c_models <= set(FAMILY_OF)
    assert families_for(TARGETS[0x69]) == ["sen5x", "sps30"]
    assert families_for(TARGETS[0x44]) == ["sht3x", "sht4x"]


@pytest.mark.parametrize("state", [IDLE, MEASURING])
def test_sps30_identified_and_left_as_it_was(state: str) -> None:
    device = Sps30Device(serial="ABCDEF0123456789", firmware=(2, 3))
    if state == MEASURING:
        device.on_write(bytes.fromhex("0010 0300 ac"))
    device.writes.clear()
    identity, _ = probe(device, 0x69)
    assert identity is not None and identity.model == "sps30"
    assert identity.facts == {"serial": "ABCDEF0123456789", "firmware": "2.3"}
    assert device.state == state
    assert set(device.writes) <= allowed("sps30")
    assert device.writes[0] == b"\xd0\x02"  # the SEN5x product-name read was refused (NACK)


def test_sleeping_sps30_is_not_woken() -> None:
    device = Sps30Device(asleep=True)
    identity, _ = probe(device, 0x69)
    assert identity is None
    assert device.state == SLEEP and device.writes == []


@pytest.mark.parametrize("model", ["sen50", "sen54", "sen55"])
def test_sen5x_product_name_tells_the_model(model: str) -> None:
    device = Sen5xDevice(model, serial="SN-5X", firmware=(2, 1))
    device.on_write(b"\x00\x21")  # measuring, as the agent leaves it
    device.writes.clear()
    identity, _ = probe(device, 0x69)
    assert identity is not None and identity.model == model
    assert identity.facts["serial"] == "SN-5X" and identity.facts["firmware"] == "2.1"
    assert identity.facts["product"] == model.upper()
    assert device.state == MEASURING
    assert set(device.writes) <= allowed("sen5x")


def test_idle_scd41_gives_serial_and_variant() -> None:
    device = Scd4xDevice(variant="scd41")
    identity, _ = probe(device, 0x62)
    assert identity is not None and identity.model == "scd41"
    assert identity.facts["serial"] == f"{DEFAULT_SERIAL:012x}"
    assert identity.state is State.IDENTIFIED
    assert device.state == "idle" and device.persist_count == 0
    assert writes(device.log) <= allowed("scd4x")


def test_idle_scd40_variant() -> None:
    identity, _ = probe(Scd4xDevice(variant="scd40"), 0x62)
    assert identity is not None and identity.model == "scd40" and not identity.alternatives


def test_measuring_scd4x_is_reported_not_stopped() -> None:
    device = Scd4xDevice(variant="scd41", periodic_interval_s=0.05)
    device.on_write(b"\x21\xb1")  # start_periodic_measurement
    before = len(device.log)
    identity, _ = probe(device, 0x62)
    assert identity is not None
    assert identity.state is State.MEASURING
    assert identity.model == "scd40" and identity.alternatives == ("scd41",)
    assert "present (measuring; identity not read)" in identity.notes
    assert device.state == "periodic"
    sent = writes(device.log[before:])
    assert sent <= allowed("scd4x")
    assert b"\x3f\x86" not in sent  # stop_periodic_measurement never sent
    assert b"\xe4\xb8" in sent


def test_scd4x_without_variant_command_is_scd40_or_scd41() -> None:
    class OldFirmware(Scd4xDevice):
        def on_write(self, data: bytes) -> None:
            if data[:2] == b"\x20\x2f":
                raise Nack("unknown command on old firmware")
            super().on_write(data)

    identity, _ = probe(OldFirmware(variant="scd41"), 0x62)
    assert identity is not None
    assert (identity.model, identity.alternatives) == ("scd40", ("scd41",))
    assert "serial" in identity.facts


def test_sleeping_scd41_is_not_woken() -> None:
    device = Scd4xDevice(variant="scd41")
    device.on_write(b"\x36\xe0")  # power_down
    identity, _ = probe(device, 0x62)
    assert identity is None
    assert device.state == "sleep"
    assert b"\x36\xf6" not in writes(device.log)  # never wake_up


def test_scd30_firmware_while_measuring() -> None:
    device = Scd30Device(measuring=True, firmware=0x0342)
    identity, _ = probe(device, 0x61)
    assert identity is not None and identity.model == "scd30"
    assert identity.facts == {"firmware": "3.66"}
    assert device.measuring and device.interval_s == 2
    assert writes(device.log) <= allowed("scd30")


@pytest.mark.parametrize("address", [0x44, 0x45])
def test_sht3x_serial_without_a_failed_command(address: int) -> None:
    device = Sht3xDevice(serial=0x12345678)
    status = device.status
    identity, _ = probe(device, address)
    assert identity is not None and identity.model == "sht3x"
    assert identity.facts["serial"] == "12345678"
    assert device.status == status  # no "command failed" flag, heater untouched
    assert {code.to_bytes(2, "big") for code in device.commands} <= allowed("sht3x")


@pytest.mark.parametrize("address", [0x44, 0x46])
def test_sht4x_serial_only(address: int) -> None:
    device = Sht4xDevice(serial=0xCAFE0001)
    identity, _ = probe(device, address)
    assert identity is not None and identity.model == "sht4x"
    assert identity.facts == {"serial": "cafe0001"}
    assert device.commands == [0x89] and device.heater_pulses == []


@pytest.mark.parametrize(("factory", "address", "model"), [
    (make_bme280, 0x76, "bme280"), (make_bmp280, 0x77, "bmp280")])
def test_bosch_chip_id_and_registers_untouched(factory, address: int, model: str) -> None:
    device = factory()
    device.clock = lambda: 100.0  # time stands still: normal mode's own conversions (and
    # the status register's 'measuring' bit) would otherwise move on a slow machine
    bus = EmulatedI2CBus()
    bus.attach(address, device)
    bus.write_i2c_block_data(address, 0xF5, [0xA0])  # t_sb 1 s, normal mode:
    bus.write_i2c_block_data(address, 0xF4, [0x27])  # someone else's settings
    control = bus.read_i2c_block_data(address, 0xF2, 4)
    conversions = device.conversions
    identity = probe_address(I2CDevice(bus, address), TARGETS[address])
    assert identity is not None and identity.model == model
    assert bus.read_i2c_block_data(address, 0xF2, 4) == control
    assert device.mode == 0b11 and device.conversions == conversions


def test_bme680_is_named_but_not_configured() -> None:
    identity, _ = probe(Bme280Device(chip_id=0x61), 0x77)
    assert identity is not None and identity.model is None
    assert identity.state is State.UNKNOWN
    assert any("BME680" in note for note in identity.notes)


def test_dnms_version_without_reset() -> None:
    device = DnmsDevice(variant="v2")
    identity, _ = probe(device, 0x55)
    assert identity is not None and identity.model == "dnms"
    assert identity.facts == {"firmware": "DNMS Version 2.5.1"}
    assert writes(device.log) <= allowed("dnms")
    assert not device.audio_running  # V2 starts its audio only on RESET, never sent


def test_pcba_dbm_registers_read_not_written() -> None:
    device = PcbaDbmDevice(version=0x32, device_id=0x01020304)
    registers = bytes(device.registers[:0x14])
    identity, _ = probe(device, 0x48)
    assert identity is not None and identity.model == "pcba_dbm"
    assert identity.facts["serial"] == "01020304"
    assert bytes(device.registers[:0x14]) == registers
    assert writes(device.log) <= allowed("pcba_dbm")


def test_other_chip_at_0x48_is_an_unknown_device() -> None:
    identity, _ = probe(PcbaDbmDevice(version=0x85), 0x48)  # e.g. an ADS1115 reading
    assert identity is not None and identity.model is None
    assert identity.state is State.UNKNOWN
    assert identity.notes[0] == "unknown device"
    assert any("VERSION register 0x85" in note for note in identity.notes)


def test_corrupt_reply_is_not_guessed() -> None:
    device = Sps30Device()
    device.corrupt_next(5)
    identity, _ = probe(device, 0x69)
    assert identity is not None and identity.model is None
    assert any("rejected" in note for note in identity.notes)


def test_empty_address_finds_nothing() -> None:
    bus = EmulatedI2CBus()
    assert probe_address(I2CDevice(bus, 0x69), TARGETS[0x69]) is None
    assert quick_write(I2CDevice(bus, 0x69)) is False


def test_adapter_without_zero_length_writes_still_identifies() -> None:
    bus = EmulatedI2CBus()
    bus.attach(0x44, Sht4xDevice())
    bus.fail_next(0x44, 1, errno.EOPNOTSUPP)
    device = I2CDevice(bus, 0x44)
    assert quick_write(device) is None
    identity = probe_address(device, TARGETS[0x44])
    assert identity is not None and identity.model == "sht4x"
