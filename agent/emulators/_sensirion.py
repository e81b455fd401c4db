"""The chip side of Sensirion-style I2C, shared by the emulated SPS30, SEN5x, SCD30, SCD4x,
SHT3x, SHT4x and DNMS.

All of them take a command in one write transaction (a 16-bit code, 8-bit on the
SHT4x, never with a CRC, then argument words each followed by a CRC-8) and put a
reply of ``word + CRC`` triplets ready for the next read transaction.
:class:`SensirionDevice` holds that bus side once: the transaction log, injected
faults (NACK, bad CRC, not ready), and the one pending reply with its timing (not
before the execution time, not while busy). Each device model only decodes its
commands and says what they do.

This framing is written independently of :mod:`agent.sensors._sensirion` (only the
CRC primitive is shared), so the drivers are tested against a second implementation.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar

from agent.bus.crc import sensirion_crc8
from agent.clock import SYSTEM
from agent.emulators._log import BoundedLog
from agent.emulators.i2c_bus import Nack

IDLE, MEASURING = "idle", "measuring"
Handler = Callable[[list[int]], None]
Words = Sequence[int] | Callable[[], Sequence[int]]


def frame_words(words: Iterable[int]) -> bytes:
    """Device-side framing: each word MSB first plus its CRC-8."""
    out = bytearray()
    for word in words:
        pair = (word & 0xFFFF).to_bytes(2, "big")
        out += pair + bytes([sensirion_crc8(pair)])
    return bytes(out)


def split_write(data: bytes) -> tuple[int, list[int]]:
    """Command code and argument words of a host write; NACK a bad length or argument CRC.

    A real chip ignores a command whose argument CRC is wrong, so nothing may change.
    """
    if len(data) < 2 or (len(data) - 2) % 3:
        raise Nack(f"malformed write {data.hex(' ')}")
    args = []
    for start in range(2, len(data), 3):
        pair = data[start:start + 2]
        if sensirion_crc8(pair) != data[start + 2]:
            raise Nack(f"argument CRC mismatch in {data.hex(' ')}")
        args.append(int.from_bytes(pair, "big"))
    return int.from_bytes(data[:2], "big"), args


def float_words(*values: float) -> list[int]:
    """Big-endian float32 values split into words, most significant word first."""
    packed = struct.pack(f">{len(values)}f", *values)
    return [int.from_bytes(packed[i:i + 2], "big") for i in range(0, len(packed), 2)]


def ascii_words(text: str, size: int | None = None) -> list[int]:
    """A NUL-terminated ASCII string padded to ``size`` bytes (default: the shortest
    whole number of words) as words."""
    if size is None:
        size = (len(text) + 2) // 2 * 2
    raw = text.encode("ascii")[: size - 1].ljust(size, b"\x00")
    return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, size, 2)]


class SensirionDevice:
    """The bus side of a Sensirion-style chip: dispatch, one pending reply, faults, log.

    Subclasses give their command table in :meth:`handlers` (named commands ->
    handlers, which call :meth:`reply`); hooks refuse traffic in special states.
    ``rereadable`` devices (SPS30, SEN5x: a command sets a read pointer) serve the
    same reply to every read until the next command; the others serve it once.
    ``read_delay_s`` is how long after a command the reply can be read at the
    earliest (a read header before that is NACKed).
    """

    rereadable: ClassVar[bool] = False
    read_delay_s: ClassVar[float] = 0.0
    _reply: Callable[[], bytes] | None
    """What the next read returns (framed words), None: nothing to read."""
    _after_read: Callable[[], None] | None

    def __init__(self, clock: Callable[[], float] = SYSTEM.monotonic) -> None:
        self.clock = clock
        self.log: BoundedLog[tuple[str, bytes]] = BoundedLog()
        """Every transaction as ("w", bytes written) or ("r", bytes returned; b"" if NACKed)."""
        self.writes: BoundedLog[bytes] = BoundedLog()
        """Every accepted write, byte for byte."""
        self.not_ready = False
        """Hold the data-ready flag at "not ready" (fault injection)."""
        self._faults = {"corrupt": 0, "nack": 0, "not_ready": 0}
        self._corrupt_replies: dict[int, int] = {}
        self._busy_until = -math.inf
        self.now = -math.inf
        """When the command being executed arrived (set before its handler runs)."""
        self.clear_reply()

    # -- fault injection ---------------------------------------------------------------
    def corrupt_next(self, count: int = 1, *, command: int | None = None) -> None:
        """Send a wrong CRC in the next ``count`` replies (only to ``command`` if given)."""
        if command is None:
            self._faults["corrupt"] += count
        else:
            self._corrupt_replies[command] = self._corrupt_replies.get(command, 0) + count

    def nack_next(self, count: int = 1) -> None:
        """NACK the next ``count`` transactions (writes or reads)."""
        self._faults["nack"] += count

    def hold_not_ready(self, count: int = 1) -> None:
        """Report "not ready" to the next ``count`` data-ready queries, data kept."""
        self._faults["not_ready"] += count

    def report_ready(self, ready: bool) -> bool:
        """What a data-ready query answers, after the injected not-ready faults."""
        return ready and not self.not_ready and not self._take("not_ready")

    # -- EmulatedI2CDevice ------------------------------------------------------------
    def on_write(self, data: bytes) -> None:
        now = self.tick()
        self.log.append(("w", bytes(data)))
        self._refuse_when_nacked_or_busy(now)
        self.before_command(data, now)
        code, args = self.decode(data)
        self.clear_reply()
        self._reply_code = code
        self.execute(code, args, now)
        self.writes.append(bytes(data))

    def on_read(self, length: int) -> bytes:
        now = self.tick()
        try:
            data = self._serve(length, now)
        except Nack:
            self.log.append(("r", b""))
            raise
        self.log.append(("r", data))
        return data

    # -- for subclasses ---------------------------------------------------------------
    def tick(self) -> float:
        """Bring the model up to now (samples due, audio blocks) and return the time."""
        return self.clock()

    def before_command(self, data: bytes, now: float) -> None:
        """Hook for states that refuse a write (raise :class:`Nack`), e.g. sleep."""

    def before_read(self, now: float) -> None:
        """Hook for states that refuse every read, e.g. sleep."""

    def decode(self, data: bytes) -> tuple[int, list[int]]:
        """Command code and argument words; NACKs what the chip would refuse."""
        return split_write(data)

    def execute(self, code: int, args: list[int], now: float) -> None:
        """Carry out a command from the device's command table (:meth:`handlers`); a
        code not in it goes to :meth:`unknown_command`; a handler refuses with :class:`Nack`.
        A subclass overrides this only to refuse whole states (asleep, measuring)
        before the table is asked, or to add what every command does after it."""
        handler = self.handlers().get(code)
        if handler is None:
            self.unknown_command(code)
            return
        self.now = now
        handler(args)

    def unknown_command(self, code: int) -> None:
        """A code not in the command table: NACKed, as most chips do."""
        raise Nack(f"unknown command 0x{code:04x}")

    def handlers(self) -> dict[int, Handler]:
        """The command table: each named command (an ``IntEnum`` member of the device's
        module) -> the handler of its argument words."""
        return {}

    def idle_read(self, length: int) -> bytes:
        """A read with no reply prepared: the chip NACKs the read header."""
        raise Nack("nothing to read")

    def reply(self, words: Words, *, delay_s: float | None = None,
              after_read: Callable[[], None] | None = None) -> None:
        """Set what the next read returns: ``words`` (re-evaluated per read if callable),
        readable ``delay_s`` from now (default :attr:`read_delay_s`); ``after_read`` runs
        once the bytes went out."""
        if callable(words):
            producer = words
            self._reply = lambda: frame_words(producer())
        else:
            framed = frame_words(words)
            self._reply = lambda: framed
        self._reply_at = self.clock() + (self.read_delay_s if delay_s is None else delay_s)
        self._after_read = after_read

    def clear_reply(self) -> None:
        """Nothing to read (after a new command, a reset or a power cycle)."""
        self._reply = None
        self._reply_code = -1
        self._reply_at = -math.inf
        self._after_read = None

    def busy_for(self, seconds: float, now: float) -> None:
        """NACK every transaction for ``seconds`` (booting, executing a long command)."""
        self._busy_until = max(self._busy_until, now + seconds)

    @staticmethod
    def expect(words: list[int], count: int) -> None:
        """NACK a command that arrived with the wrong number of argument words."""
        if len(words) != count:
            raise Nack(f"expected {count} argument words, got {len(words)}")

    # -- internals --------------------------------------------------------------------
    def _take(self, fault: str) -> bool:
        pending = self._faults[fault]
        if pending:
            self._faults[fault] = pending - 1
        return bool(pending)

    def _take_corrupt(self) -> bool:
        if self._take("corrupt"):
            return True
        pending = self._corrupt_replies.get(self._reply_code, 0)
        if pending:
            self._corrupt_replies[self._reply_code] = pending - 1
        return bool(pending)

    def _refuse_when_nacked_or_busy(self, now: float) -> None:
        if self._take("nack"):
            raise Nack("injected NACK")
        if now < self._busy_until:
            raise Nack("busy")

    def _serve(self, length: int, now: float) -> bytes:
        self._refuse_when_nacked_or_busy(now)
        self.before_read(now)
        if self._reply is None:
            return self.idle_read(length)
        if now < self._reply_at:
            raise Nack("reply not ready yet")
        data = bytearray(self._reply()[:length].ljust(length, b"\xff"))
        if self._take_corrupt() and length >= 3:
            data[2] ^= 0xFF
        after, self._after_read = self._after_read, None
        if not self.rereadable:
            self._reply = None
        if after is not None:
            after()
        return bytes(data)
