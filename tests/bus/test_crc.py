"""Checksum helpers against the published check values."""

import pytest

from agent.bus.crc import crc16_modbus, sensirion_crc8, sum8, sum16


@pytest.mark.parametrize(
    ("word", "crc"),
    [(0xBEEF, 0x92), (0x0000, 0x81), (0x0001, 0xB0), (0x0300, 0xAC), (0x0500, 0xF6),
     (0x8000, 0xA2), (0xFFFF, 0xAC), (0x01F4, 0x33), (0x6667, 0xA2), (0x8C2E, 0x8F)],
)
def test_sensirion_crc8_matches_datasheet_table(word: int, crc: int) -> None:
    assert sensirion_crc8(word.to_bytes(2, "big")) == crc


def test_crc16_modbus_check_value_and_wire_example() -> None:
    assert crc16_modbus(b"123456789") == 0x4B37
    # CO2meter AN123: request 68 04 00 03 00 01, CRC sent low byte first as C8 F3.
    assert crc16_modbus(bytes.fromhex("680400030001")).to_bytes(2, "little") == b"\xc8\xf3"


def test_byte_sums() -> None:
    assert sum8(bytes.fromhex("D4043A0AA160")) == 0x1D  # SDS011 datasheet data frame
    frame = bytes.fromhex("424D001C0005000D00160005000D001602FD00FC001D000F00060006 9700")
    assert sum16(frame) == 0x03C5  # PMS5003 captured frame
