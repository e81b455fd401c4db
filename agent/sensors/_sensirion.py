"""Sensirion I2C word framing and driver plumbing, shared by every Sensirion-style driver.

Sensirion sensors (SPS30, SEN5x, SCD30, SCD4x, SHT3x, SHT4x) and the DNMS talk in
16-bit big-endian words. Every word on the wire is followed by a CRC-8 over its
two bytes (poly 0x31, init 0xFF; see :func:`agent.bus.crc.sensirion_crc8`);
command codes are the exception and never carry one. A transaction is: write the
command plus any argument words, STOP; wait the command's execution time; then
read N words in a separate transaction. No repeated START is used: the SCD30 does
not support it and the other sensors do not need it.

A command is plain data (:class:`SensirionCommand`) so every command can be
tested against captured bytes without hardware; :class:`SensirionDriver` gives
the drivers one way to send commands and count the replies they reject, instead
of a copy of the same helpers in each driver.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from agent.bus.crc import sensirion_crc8
from agent.bus.i2c import I2CDevice
from agent.errors import CrcError, FrameError, SensorError
from agent.sensors.base import RejectCounter

log = logging.getLogger(__name__)
_T = TypeVar("_T")

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


def decode_reply(data: bytes, count: int, *, what: str) -> list[int]:
    """Exactly ``count`` CRC-checked words; any other length is a :class:`FrameError`."""
    expected = count * FRAME_BYTES
    if len(data) != expected:
        raise FrameError(f"{what}: reply has {len(data)} bytes, expected {expected}",
                         raw=bytes(data))
    return decode_words(data, what=what)


def join_words(words: Sequence[int]) -> int:
    """Words as one unsigned integer, most significant word first (uint32, 48-bit serials)."""
    return int.from_bytes(b"".join(word.to_bytes(WORD_BYTES, "big") for word in words), "big")


def split_uint32(value: int) -> tuple[int, int]:
    """A 32-bit argument as the two words it is sent as, most significant first."""
    return value >> 16, value & 0xFFFF


def decode_ascii(words: Sequence[int]) -> str:
    """Serial numbers, product names, version strings: two characters a word, NUL-terminated."""
    text = b"".join(word.to_bytes(WORD_BYTES, "big") for word in words)
    return text.split(b"\x00", 1)[0].decode("ascii", errors="replace")


def encode_floats(values: Iterable[float]) -> bytes:
    """Big-endian IEEE-754 float32 values, each as two CRC-framed words, MSW first."""
    words: list[int] = []
    for value in values:
        raw = struct.unpack(">I", struct.pack(">f", value))[0]
        words += split_uint32(raw)
    return encode_words(words)


def decode_floats(data: bytes, count: int, *, what: str,
                  require_finite: bool = False) -> tuple[float, ...]:
    """``count`` big-endian float32 values sent as two CRC-checked words each, MSW first.

    With ``require_finite`` a NaN or infinity (which no sensor reports on purpose) raises
    :class:`SensorError` rather than reaching a measurement.
    """
    words = decode_reply(data, 2 * count, what=what)
    packed = b"".join(word.to_bytes(WORD_BYTES, "big") for word in words)
    values = struct.unpack(f">{count}f", packed)
    if require_finite and not all(map(math.isfinite, values)):
        raise SensorError(f"{what}: non-finite value (raw {data.hex(' ')})")
    return values


@dataclass(frozen=True)
class SensirionCommand:
    """One command: its code, execution time and reply length in words.

    ``delay_s`` is waited after the write, before the read (or, for a command
    without reply, before the next command may be sent). ``code_bytes`` is 2 for
    the usual 16-bit codes; the SHT4x uses one-byte commands.
    """

    code: int
    name: str
    delay_s: float = 0.0
    reply_words: int = 0
    code_bytes: int = WORD_BYTES

    def encode(self, *args: int) -> bytes:
        """Command code (no CRC) followed by the argument words with their CRCs."""
        return self.code.to_bytes(self.code_bytes, "big") + encode_words(args)

    def interpret(self, data: bytes) -> list[int]:
        """Check the reply length and CRCs; return the words."""
        return decode_reply(data, self.reply_words, what=self.name)

    def send(self, device: I2CDevice, *args: int) -> None:
        """Write the command and wait its execution time."""
        frame = self.encode(*args)
        log.debug("i2c 0x%02x tx %s (%s)", device.address, frame.hex(" "), self.name)
        device.write(frame)
        if self.delay_s:
            device.clock.sleep(self.delay_s)

    def receive(self, device: I2CDevice) -> bytes:
        """Read the raw reply (nothing for a command without one)."""
        if not self.reply_words:
            return b""
        data = device.read(self.reply_words * FRAME_BYTES)
        log.debug("i2c 0x%02x rx %s (%s)", device.address, data.hex(" "), self.name)
        return data

    def transfer(self, device: I2CDevice, *args: int) -> bytes:
        """Write the command, wait its execution time, read the raw reply (if any)."""
        self.send(device, *args)
        return self.receive(device)

    def run(self, device: I2CDevice, *args: int) -> list[int]:
        """:meth:`transfer` and :meth:`interpret` in one go."""
        data = self.transfer(device, *args)
        return self.interpret(data) if self.reply_words else []


class SensirionDriver(RejectCounter):
    """Wire helpers of the drivers for Sensirion-framed devices.

    The driver keeps its :class:`I2CDevice` in ``_bus``; every reply goes through
    :meth:`_query`, so a bad CRC or length always counts in ``frames_rejected``.
    """

    model: ClassVar[str]
    _bus: I2CDevice

    def _send(self, command: SensirionCommand, *args: int) -> None:
        """A command without reply (or whose reply is not wanted)."""
        command.send(self._bus, *args)

    def _query(self, command: SensirionCommand, parse: Callable[[bytes], _T], *args: int) -> _T:
        """Send a command, read its reply and parse it; a bad frame counts as rejected."""
        return self.checked(parse, command.transfer(self._bus, *args))

    def _words(self, command: SensirionCommand, *args: int) -> list[int]:
        """The reply's words, length and CRCs checked."""
        return self._query(command, command.interpret, *args)

    def _ensure(self, get: SensirionCommand, put: SensirionCommand, wanted: Sequence[int],
                what: str) -> None:
        """Write a stored setting only when the device holds another value.

        Settings live in flash or EEPROM on several of these sensors, so rewriting an
        unchanged value at every start would only wear the memory out.
        """
        current = self._words(get)
        if current != list(wanted):
            log.info("%s 0x%02x: %s %s -> %s", self.model, self._bus.address, what,
                     _shown(current), _shown(wanted))
            self._send(put, *wanted)


def _shown(words: Sequence[int]) -> int | list[int]:
    """A setting for the log: the plain number when it is one word."""
    return words[0] if len(words) == 1 else list(words)
