"""Sensirion I2C word framing, shared by the SCD30, SCD4x, SPS30, SEN5x and SHT drivers.

Sensirion sensors talk in 16-bit big-endian words. Every word on the wire is
followed by a CRC-8 over its two bytes (poly 0x31, init 0xFF; see
:func:`agent.bus.crc.sensirion_crc8`); command codes are the exception and
never carry one. A transaction is: write the 16-bit command plus any argument
words, STOP; wait the command's execution time; then read N words in a
separate transaction. No repeated START is used: the SCD30 does not support
it and the other sensors do not need it.

A command is plain data (:class:`SensirionCommand`) so every command can be
tested against captured bytes without hardware.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from agent.bus.crc import sensirion_crc8
from agent.bus.i2c import I2CDevice
from agent.errors import CrcError, FrameError

log = logging.getLogger(__name__)

WORD_BYTES = 2
FRAME_BYTES = 3
"""One word plus its CRC byte."""


def encode_words(values: Iterable[int]) -> bytes:
    """Words as they go on the wire: each big-endian word followed by its CRC-8."""
    out = bytearray()
    for value in values:
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"word {value} outside 0..0xFFFF")
        word = value.to_bytes(WORD_BYTES, "big")
        out += word
        out.append(sensirion_crc8(word))
    return bytes(out)


def decode_words(data: bytes, *, what: str = "Sensirion reply") -> list[int]:
    """Split ``word, CRC`` triplets into words, verifying every CRC.

    Raises :class:`FrameError` when the length is not a whole number of
    triplets and :class:`CrcError` (with the whole reply as evidence) on the
    first word whose CRC does not match.
    """
    if len(data) % FRAME_BYTES:
        raise FrameError(f"{what}: {len(data)} bytes is not a whole number of words",
                         raw=bytes(data))
    words = []
    for start in range(0, len(data), FRAME_BYTES):
        word = data[start:start + WORD_BYTES]
        expected = sensirion_crc8(word)
        received = data[start + WORD_BYTES]
        if expected != received:
            raise CrcError(f"{what}: CRC of word {start // FRAME_BYTES}",
                           expected=expected, received=received, raw=bytes(data))
        words.append(int.from_bytes(word, "big"))
    return words


@dataclass(frozen=True)
class SensirionCommand:
    """One 16-bit command: its code, execution time and reply length in words.

    ``delay_s`` is waited after the write, before the read (or, for a command
    without reply, before the next command may be sent).
    """

    code: int
    name: str
    delay_s: float = 0.0
    reply_words: int = 0

    def encode(self, *args: int) -> bytes:
        """Command code (no CRC) followed by the argument words with their CRCs."""
        return self.code.to_bytes(WORD_BYTES, "big") + encode_words(args)

    def interpret(self, data: bytes) -> list[int]:
        """Check the reply length and CRCs; return the words."""
        expected = self.reply_words * FRAME_BYTES
        if len(data) != expected:
            raise FrameError(f"{self.name}: reply has {len(data)} bytes, expected {expected}",
                             raw=bytes(data))
        return decode_words(data, what=self.name)

    def transfer(self, device: I2CDevice, *args: int) -> bytes:
        """Write the command, wait its execution time, read the raw reply (if any)."""
        frame = self.encode(*args)
        log.debug("i2c 0x%02x tx %s (%s)", device.address, frame.hex(" "), self.name)
        device.write(frame)
        if self.delay_s:
            time.sleep(self.delay_s)
        if not self.reply_words:
            return b""
        data = device.read(self.reply_words * FRAME_BYTES)
        log.debug("i2c 0x%02x rx %s (%s)", device.address, data.hex(" "), self.name)
        return data

    def run(self, device: I2CDevice, *args: int) -> list[int]:
        """:meth:`transfer` and :meth:`interpret` in one go."""
        data = self.transfer(device, *args)
        return self.interpret(data) if self.reply_words else []
