"""Checksums shared by several sensor families."""

from __future__ import annotations


def sensirion_crc8(data: bytes | bytearray) -> int:
    """CRC-8 used by Sensirion sensors and the DNMS: poly 0x31, init 0xFF, no reflection.

    Datasheet check value: ``sensirion_crc8(b"\\xbe\\xef") == 0x92``.
    """
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def crc16_modbus(data: bytes | bytearray) -> int:
    """CRC-16/MODBUS: reflected poly 0xA001, init 0xFFFF; sent low byte first.

    Check value: ``crc16_modbus(b"123456789") == 0x4B37``.
    """
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def sum8(data: bytes | bytearray) -> int:
    """Low byte of the plain byte sum (Nova SDS011 frames)."""
    return sum(data) & 0xFF


def sum16(data: bytes | bytearray) -> int:
    """Low 16 bits of the plain byte sum (Plantower PMS frames)."""
    return sum(data) & 0xFFFF
