"""Generic Modbus RTU master for RS485 transmitters (noise, CO2, wind...) on a serial port.

Sources: MODBUS Application Protocol Specification V1.1b3 (function codes 0x03 read
holding registers and 0x04 read input registers, exception responses, at most 125
registers per read) and MODBUS over Serial Line V1.02 (RTU framing, CRC-16/MODBUS
sent low byte first, frames separated by at least 3.5 character times of silence;
above 19200 bit/s a fixed 1.75 ms). Worked example: CO2meter AN123 (K30).

The device is described entirely by options (:class:`agent.config.modbus.ModbusOptions`),
normally taken from a firmware profile's ``driver = "modbus"`` and ``[driver_options]``
table, so a new transmitter is a new profile file and no code::

    [driver_options]
    slave_id = 1
    function = 3
    [[driver_options.registers]]
    quantity = "sound_level"
    address = 0
    scale = 0.1

Request: ``slave fn addr_hi addr_lo count_hi count_lo crc_lo crc_hi``. Reply:
``slave fn byte_count data... crc_lo crc_hi``, or the exception reply
``slave fn|0x80 code crc_lo crc_hi``.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, NoReturn

from agent.bus.crc import crc16_modbus
from agent.bus.serial import SerialLink
from agent.config.modbus import MAX_REGISTERS, MAX_SLAVE_ID, ModbusOptions, RegisterSpec
from agent.errors import BusTimeout, CrcError, DataNotReady, FrameError, SensorError
from agent.models import Reading
from agent.sensors import register
from agent.sensors.base import BusKind, RejectCounter

log = logging.getLogger(__name__)

READ_HOLDING_REGISTERS = 0x03
READ_INPUT_REGISTERS = 0x04
EXCEPTION_FLAG = 0x80
BITS_PER_CHARACTER = 11
"""RTU character: start + 8 data + parity (or a second stop bit) + stop."""
FIXED_GAP_ABOVE_BAUD = 19200
FIXED_GAP_S = 0.00175
DEFAULT_BAUD = 9600

EXCEPTIONS = {
    0x01: "ILLEGAL FUNCTION",
    0x02: "ILLEGAL DATA ADDRESS",
    0x03: "ILLEGAL DATA VALUE",
    0x04: "SERVER DEVICE FAILURE",
    0x05: "ACKNOWLEDGE",
    0x06: "SERVER DEVICE BUSY",
    0x08: "MEMORY PARITY ERROR",
    0x0A: "GATEWAY PATH UNAVAILABLE",
    0x0B: "GATEWAY TARGET DEVICE FAILED TO RESPOND",
}


class ModbusException(SensorError):
    """The device answered with a Modbus exception response (a valid frame, no data)."""

    def __init__(self, slave_id: int, function: int, code: int) -> None:
        self.slave_id = slave_id
        self.function = function
        self.code = code
        self.name = EXCEPTIONS.get(code, "UNKNOWN EXCEPTION")
        super().__init__(f"Modbus slave {slave_id} function 0x{function:02x}: exception "
                         f"0x{code:02x} {self.name}")


class ModbusBusy(ModbusException, DataNotReady):
    """Exception 0x05 ACKNOWLEDGE or 0x06 SERVER DEVICE BUSY: ask again next slot."""


def frame_gap_s(baudrate: int) -> float:
    """Minimum silence between frames: 3.5 characters, fixed 1.75 ms above 19200 bit/s."""
    if baudrate > FIXED_GAP_ABOVE_BAUD:
        return FIXED_GAP_S
    return 3.5 * BITS_PER_CHARACTER / baudrate


def with_crc(body: bytes) -> bytes:
    """Append CRC-16/MODBUS, low byte first."""
    return body + crc16_modbus(body).to_bytes(2, "little")


def encode_read_request(slave_id: int, function: int, address: int, count: int) -> bytes:
    """Read holding (0x03) or input (0x04) registers ``address .. address+count-1``."""
    if not 1 <= slave_id <= MAX_SLAVE_ID:
        raise ValueError(f"slave id {slave_id} outside 1..{MAX_SLAVE_ID}")
    if function not in (READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS):
        raise ValueError(f"function 0x{function:02x} is not a register read (3 or 4)")
    if not 1 <= count <= MAX_REGISTERS or not 0 <= address <= 0xFFFF - count + 1:
        raise ValueError(f"registers {address}+{count} outside the 16-bit address space "
                         f"or above {MAX_REGISTERS} per request")
    return with_crc(bytes([slave_id, function]) + address.to_bytes(2, "big")
                    + count.to_bytes(2, "big"))


def parse_read_reply(frame: bytes, slave_id: int, function: int, count: int) -> list[int]:
    """Check a complete reply frame and return its ``count`` register words.

    Order: CRC (over everything before it) → :class:`CrcError`; slave id and
    function → :class:`FrameError`; exception reply → :class:`ModbusException`;
    byte count and length → :class:`FrameError`.
    """
    frame = bytes(frame)
    if len(frame) < 5:
        raise FrameError(f"Modbus reply of {len(frame)} bytes is too short", raw=frame)
    expected = crc16_modbus(frame[:-2])
    received = int.from_bytes(frame[-2:], "little")
    if expected != received:
        raise CrcError("Modbus CRC mismatch", expected=expected, received=received, raw=frame)
    if frame[0] != slave_id:
        raise FrameError(f"Modbus reply from slave {frame[0]}, expected {slave_id}", raw=frame)
    if frame[1] == function | EXCEPTION_FLAG and len(frame) == 5:
        code = frame[2]
        kind = ModbusBusy if code in (0x05, 0x06) else ModbusException
        raise kind(slave_id, function, code)
    if frame[1] != function:
        raise FrameError(f"Modbus reply for function 0x{frame[1]:02x}, expected "
                         f"0x{function:02x}", raw=frame)
    if frame[2] != 2 * count or len(frame) != 5 + 2 * count:
        raise FrameError(f"Modbus reply carries {frame[2]} data bytes in {len(frame)} bytes, "
                         f"expected {2 * count}", raw=frame)
    return [int.from_bytes(frame[i:i + 2], "big") for i in range(3, 3 + 2 * count, 2)]


def decode_value(words: Sequence[int], spec: RegisterSpec) -> float:
    """Combine the register words and apply ``raw * scale + offset``."""
    if len(words) != spec.words:
        raise ValueError(f"{spec.quantity}: {len(words)} words, expected {spec.words}")
    ordered = list(words) if spec.word_order == "big" else list(reversed(words))
    raw_bytes = b"".join(word.to_bytes(2, "big") for word in ordered)
    if spec.float32:
        value: float = struct.unpack(">f", raw_bytes)[0]
        return value * spec.scale + spec.offset
    raw = int.from_bytes(raw_bytes, "big", signed=spec.signed)
    # value = raw * scale + offset, rounded to 9 decimals so 569 * 0.1 reads 56.9 rather
    # than 56.900000000000006 (far below any integer register's resolution).
    return round(raw * spec.scale + spec.offset, 9)


@dataclass(frozen=True)
class Block:
    """One read request: a gap-free run of registers and the quantities inside it."""

    address: int
    count: int
    specs: tuple[RegisterSpec, ...]


def plan_blocks(registers: Sequence[RegisterSpec], max_count: int = MAX_REGISTERS) -> list[Block]:
    """Group registers into gap-free runs of at most ``max_count`` registers.

    Contiguous (or overlapping) registers share one request; a gap starts a new
    request, because many devices refuse reads that touch unmapped addresses.
    """
    blocks: list[Block] = []
    start = end = -1
    members: list[RegisterSpec] = []
    for spec in sorted(registers, key=lambda s: (s.address, s.end)):
        if members and spec.address <= end and max(end, spec.end) - start <= max_count:
            end = max(end, spec.end)
            members.append(spec)
            continue
        if members:
            blocks.append(Block(start, end - start, tuple(members)))
        start, end, members = spec.address, spec.end, [spec]
    if members:
        blocks.append(Block(start, end - start, tuple(members)))
    return blocks


@register("modbus", bus=BusKind.SERIAL, options=ModbusOptions)
class ModbusRtu(RejectCounter):
    """Reads the configured registers of one Modbus RTU slave each slot.

    ``generic``: the quantities come from the options (the profile), not the class,
    so ``quantities`` is empty and the profile's [[quantities]] must match
    ``options.quantity_names`` instead.
    """

    model: ClassVar[str] = "modbus"
    quantities: ClassVar[tuple[str, ...]] = ()
    generic: ClassVar[bool] = True

    def __init__(self, bus: SerialLink, options: ModbusOptions) -> None:
        self._link = bus
        self.options = options
        self._blocks = plan_blocks(options.registers, options.max_registers_per_request)
        self.baudrate = bus.baudrate or DEFAULT_BAUD
        self.gap_s = frame_gap_s(self.baudrate)
        self._quiet_since = 0.0

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        """Probe: one full read, so a missing or misconfigured device fails at start."""
        self.read()

    def read(self) -> list[Reading]:
        """All configured quantities, in the order of the register table."""
        values: dict[str, float] = {}
        for block in self._blocks:
            words = self._read_block(block)
            for spec in block.specs:
                offset = spec.address - block.address
                values[spec.quantity] = decode_value(words[offset:offset + spec.words], spec)
        return [Reading(name, values[name]) for name in self.options.quantity_names]

    def reset(self) -> None:
        """Modbus has no generic reset: drop stale bytes and wait out one frame gap."""
        self._link.discard_input()
        self._quiet_since = self._link.clock.monotonic()

    def stop(self) -> None:
        """Nothing to stop: the transmitter measures continuously on its own."""

    # -- wire -----------------------------------------------------------------------

    def _read_block(self, block: Block) -> list[int]:
        slave, function = self.options.slave_id, self.options.function
        request = encode_read_request(slave, function, block.address, block.count)
        self._send(request)
        return self.checked(parse_read_reply, self._receive(), slave, function, block.count)

    def _send(self, request: bytes) -> None:
        wait = self._quiet_since + self.gap_s - self._link.clock.monotonic()
        if wait > 0:
            self._link.clock.sleep(wait)  # a frame must follow >= 3.5 characters of silence
        self._link.discard_input()  # late replies and line noise are not ours
        log.debug("%s: modbus tx %s", self._link.name, request.hex(" "))
        self._link.write(request)
        self._quiet_since = (self._link.clock.monotonic()
                             + len(request) * BITS_PER_CHARACTER / self.baudrate)

    def _receive(self) -> bytes:
        """Read one reply: header, then the length its function/byte count announces."""
        deadline = self._link.clock.monotonic() + self.options.reply_timeout_s
        frame = self._read_until(bytearray(), 3, deadline)
        if not frame:
            raise BusTimeout(f"{self._link.name}: Modbus slave {self.options.slave_id} "
                             "did not answer")
        total = 3
        if len(frame) == total:
            if frame[0] != self.options.slave_id or \
                    frame[1] & ~EXCEPTION_FLAG != self.options.function:
                # Another slave's answer, an echo or line noise: RTU cannot resynchronise
                # inside a frame, so reject it; the next request flushes the rest.
                self._reject(frame, f"not a reply from slave {self.options.slave_id}")
            total = 5 if frame[1] & EXCEPTION_FLAG else 5 + frame[2]
            frame = self._read_until(frame, total, deadline)
        log.debug("%s: modbus rx %s", self._link.name, frame.hex(" "))
        if len(frame) < total:
            self._reject(frame, "Modbus reply truncated")
        self._quiet_since = self._link.clock.monotonic()
        return bytes(frame)

    def _reject(self, frame: bytearray, reason: str) -> NoReturn:
        self._quiet_since = self._link.clock.monotonic()
        raise self.rejected(FrameError(f"{self._link.name}: {reason}", raw=bytes(frame)))

    def _read_until(self, got: bytearray, length: int, deadline: float) -> bytearray:
        while len(got) < length:
            chunk = self._link.read_some(length - len(got))
            got += chunk
            if not chunk and self._link.clock.monotonic() >= deadline:
                break
        return got
