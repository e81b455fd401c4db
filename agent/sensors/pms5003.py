"""Plantower PMS5003 / PMS7003 / PMSA003 laser particle sensors over UART (9600 8N1).

Datasheets: Plantower "PMS5003 series data manual" V2.3 (2016-06-01), appendix I (the
32-byte data frame) and appendix II (7-byte host commands); the PMS7003 and PMSA003
data manuals (V2.5) describe the same protocol behind a different connector.

Every frame starts with ``42 4D`` ("BM") and a big-endian length field that counts the
bytes after it; the last two bytes are the 16-bit sum of everything before them. The
sensor streams frames by itself after power-up ("active" mode, every 2.3 s in its
stable sub-mode, 0.2–0.8 s in its fast sub-mode) or answers one frame per request
("passive" mode), which is the default here so the agent decides when the laser runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from agent.bus.crc import sum16
from agent.bus.serial import SerialLink
from agent.config.options import DriverOptions
from agent.errors import BusTimeout, CrcError, FrameError, SensorError
from agent.models import Reading
from agent.sensors import register
from agent.sensors.base import BusKind, RejectCounter

log = logging.getLogger(__name__)

_HEADER = b"\x42\x4d"           # start characters "BM"
_DATA_LENGTH = 28               # length field of a data frame: 2×13 data bytes + 2 check bytes
_ACK_LENGTH = 4                 # length field of a command acknowledgement
_FRAME_SIZE = 4 + _DATA_LENGTH  # 32 bytes on the wire
_ACK_SIZE = 4 + _ACK_LENGTH     # 8 bytes: 42 4D 00 04 CMD DATAL sumH sumL
_COMMAND_SIZE = 7               # 42 4D CMD DATAH DATAL LRCH LRCL
_MAX_SKIP = 256                 # bytes of noise tolerated while looking for a header

_CMD_CHANGE_MODE = 0xE1         # DATAL 0x00 passive, 0x01 active; acknowledged
_CMD_PASSIVE_READ = 0xE2        # answered with one data frame (passive mode only)
_CMD_SLEEP_SET = 0xE4           # DATAL 0x00 sleep (acknowledged), 0x01 wake (no answer)
_MODE_PASSIVE = 0x00
_MODE_ACTIVE = 0x01
_SLEEP = 0x00
_WAKE = 0x01

# Not a datasheet figure: a short pause so a sensor that was asleep is listening before
# the mode command follows the wake command.
_WAKE_SETTLE_S = 0.1
_EMPTY_READ_PAUSE_S = 0.01      # back-off when a non-blocking port returns nothing

QUANTITIES: tuple[str, ...] = (
    "pm1_0_cf1", "pm2_5_cf1", "pm10_cf1",        # Data1..3: CF=1 "standard particle" [ug/m3]
    "pm1_0", "pm2_5", "pm10",                     # Data4..6: atmospheric environment [ug/m3]
    "count_0_3um", "count_0_5um", "count_1_0um",  # Data7..12: particles larger than d
    "count_2_5um", "count_5_0um", "count_10um",   # in 0.1 L of air [/dL]
)


@dataclass(frozen=True, slots=True)
class PmsFrame:
    """One decoded data frame; every field is the raw unsigned word the sensor sent.

    The datasheet calls Data13 "reserved"; in practice its high byte is a version code
    (0x97, 0x71, 0x80 are seen) and its low byte an error code, 0 when healthy.
    """

    pm1_0_cf1: int
    pm2_5_cf1: int
    pm10_cf1: int
    pm1_0: int
    pm2_5: int
    pm10: int
    count_0_3um: int
    count_0_5um: int
    count_1_0um: int
    count_2_5um: int
    count_5_0um: int
    count_10um: int
    version: int = 0
    error_code: int = 0

    def data_words(self) -> tuple[int, ...]:
        """Data1..Data12 in wire order (the same order as :data:`QUANTITIES`).

        Not ``dataclasses.astuple``: it builds a tuple of the fields from a generator, a
        tuple resized from a guessed size, which CPython then keeps in the free list of its
        final size (up to 2000 of them, grown by one a read; tests/garbage.py)."""
        return tuple([getattr(self, name) for name in QUANTITIES])


def encode_command(command: int, data: int = 0) -> bytes:
    """Build a host command: ``42 4D CMD DATAH DATAL`` + 16-bit sum of those five bytes.

    >>> encode_command(0xE2).hex(" ")
    '42 4d e2 00 00 01 71'
    """
    if not 0 <= command <= 0xFF or not 0 <= data <= 0xFFFF:
        raise ValueError(f"command 0x{command:x} / data 0x{data:x} out of range")
    body = _HEADER + bytes([command]) + data.to_bytes(2, "big")
    return body + sum16(body).to_bytes(2, "big")


def encode_frame(frame: PmsFrame) -> bytes:
    """The 32 bytes a sensor sends for ``frame`` (used by tests and as the spec in code)."""
    words = (*frame.data_words(), (frame.version << 8) | frame.error_code)
    body = _HEADER + _DATA_LENGTH.to_bytes(2, "big") + b"".join(
        word.to_bytes(2, "big") for word in words)
    return body + sum16(body).to_bytes(2, "big")


def _check_envelope(raw: bytes, size: int, length: int, what: str) -> None:
    """Verify size, header, length field and the 16-bit sum of a frame or acknowledgement."""
    if len(raw) != size:
        raise FrameError(f"PMS {what}: {len(raw)} bytes, expected {size}", raw=raw)
    if raw[:2] != _HEADER:
        raise FrameError(f"PMS {what}: bad start characters", raw=raw)
    received_length = int.from_bytes(raw[2:4], "big")
    if received_length != length:
        raise FrameError(f"PMS {what}: length field {received_length}, expected {length}",
                         raw=raw)
    # check code = sum of all bytes before it (start characters included), low 16 bits
    expected = sum16(raw[:-2])
    received = int.from_bytes(raw[-2:], "big")
    if expected != received:
        raise CrcError(f"PMS {what} checksum", expected=expected, received=received, raw=raw)


def parse_frame(raw: bytes) -> PmsFrame:
    """Decode a 32-byte data frame; :class:`CrcError`/:class:`FrameError` carry ``raw``.

    A 24-byte PMS3003 frame (length field 20) is rejected rather than decoded: it has
    no particle counts, so it cannot fill this driver's quantities, and a PMS3003 on a
    port configured for a PMS5003 is a configuration mistake that should be loud.
    """
    _check_envelope(raw, _FRAME_SIZE, _DATA_LENGTH, "frame")
    words = [int.from_bytes(raw[i:i + 2], "big") for i in range(4, 30, 2)]
    # Data1..Data12 are concentrations [ug/m3] and counts [/0.1 L] as plain integers.
    return PmsFrame(**dict(zip(QUANTITIES, words[:12], strict=True)), version=raw[28],
                    error_code=raw[29])


def parse_ack(raw: bytes) -> tuple[int, int]:
    """Decode an 8-byte acknowledgement into ``(command, DATAL)``.

    The sensor echoes DATAL, so the acknowledgement says which mode it actually entered.
    """
    _check_envelope(raw, _ACK_SIZE, _ACK_LENGTH, "acknowledgement")
    return raw[4], raw[5]


class PmsOptions(DriverOptions):
    """Options for a Plantower PMS sensor (``[sensors.<id>.options]``)."""

    mode: Literal['passive', 'active'] = Field(
        default="passive", description="``passive``: the agent requests every frame, so the laser "
        "can sleep between readings. ``active``: the sensor streams frames and the driver takes "
        "the next one.")
    reply_timeout_s: float = Field(
        default=3.0, description="Seconds to wait for an answer or the next frame [s]; active "
        "frames come every 2.3 s at most, so keep it above that in active mode.")

    @model_validator(mode="after")
    def _check(self) -> PmsOptions:
        if self.mode not in ("passive", "active"):
            raise ValueError(f"mode must be 'passive' or 'active', not {self.mode!r}")
        if self.reply_timeout_s <= 0:
            raise ValueError("reply_timeout_s must be positive")
        return self


@register("pms5003", "pms7003", "pmsa003", bus=BusKind.SERIAL, options=PmsOptions)
class Pms5003(RejectCounter):
    """Driver for the PMSx003 family on an open 9600-baud :class:`SerialLink`."""

    model: ClassVar[str] = "pms5003"
    quantities: ClassVar[tuple[str, ...]] = QUANTITIES

    def __init__(self, bus: SerialLink, options: PmsOptions) -> None:
        self._link = bus
        self._options = options
        self._mode = _MODE_ACTIVE if options.mode == "active" else _MODE_PASSIVE
        self._pending = bytearray()  # bytes read past a false header, scanned again
        self._last: PmsFrame | None = None
        self._put_to_sleep = False

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> None:
        """Wake the sensor and put it in the configured mode, checking the echo."""
        self.wake()
        self._link.clock.sleep(_WAKE_SETTLE_S)
        self._command_with_ack(_CMD_CHANGE_MODE, self._mode)

    def read(self) -> list[Reading]:
        """Return one fresh frame's values (never a frame that was buffered earlier)."""
        frame = self._fetch_frame()
        self._last = frame
        if frame.error_code:
            raise SensorError(f"{self._link.name}: PMS reports error code "
                              f"0x{frame.error_code:02x} (Data13 low byte)")
        return [Reading(name, float(value))
                for name, value in zip(QUANTITIES, frame.data_words(), strict=True)]

    def reset(self) -> None:
        """Re-initialise: wake and set the mode again (the PMS has no soft-reset command)."""
        self._pending.clear()
        self.start()

    def stop(self) -> None:
        """Sleep (laser and fan off) unless this driver already put the sensor to sleep."""
        if not self._put_to_sleep:
            self.sleep()

    def sleep(self) -> None:
        """Send the sleep command and check its acknowledgement."""
        self._command_with_ack(_CMD_SLEEP_SET, _SLEEP)
        self._put_to_sleep = True

    def wake(self) -> None:
        """Send the wake command; it has no answer, active frames simply resume.

        The datasheet wants 30 s after waking before data are stable (fan spin-up);
        the sampler handles that with the profile's ``wake_lead_s``/``warmup_s``.
        """
        self._link.write(encode_command(_CMD_SLEEP_SET, _WAKE))
        self._put_to_sleep = False

    def identify(self) -> dict[str, str]:
        """The version code from Data13 (the protocol offers no serial number)."""
        frame = self._last or self._fetch_frame()
        return {"firmware": f"0x{frame.version:02x}"}

    # -- exchanges --------------------------------------------------------------------

    def _fetch_frame(self) -> PmsFrame:
        """Discard buffered input, then take the next data frame (requested if passive)."""
        self._discard()
        if self._mode == _MODE_PASSIVE:
            self._link.write(encode_command(_CMD_PASSIVE_READ))
        deadline = self._link.clock.monotonic() + self._options.reply_timeout_s
        while True:
            raw = self._next_message(deadline)
            if len(raw) == _FRAME_SIZE:
                return self.checked(parse_frame, raw)
            log.debug("%s: skipping stray acknowledgement %s", self._link.name, raw.hex(" "))

    def _command_with_ack(self, command: int, data: int) -> None:
        """Send a command and wait for its acknowledgement, skipping data frames in flight."""
        self._discard()
        self._link.write(encode_command(command, data))
        deadline = self._link.clock.monotonic() + self._options.reply_timeout_s
        while True:
            raw = self._next_message(deadline)
            if len(raw) != _ACK_SIZE:
                continue  # an active-mode frame sent before the command was seen
            echoed_command, echoed_data = self.checked(parse_ack, raw)
            if echoed_command != command:
                continue
            if echoed_data != data:
                raise SensorError(f"{self._link.name}: PMS acknowledged 0x{command:02x} with "
                                  f"DATAL 0x{echoed_data:02x}, expected 0x{data:02x}")
            return

    # -- framing on the byte stream ---------------------------------------------------

    def _discard(self) -> None:
        self._pending.clear()
        self._link.discard_input()

    def _next_message(self, deadline: float) -> bytes:
        """Return the next data frame or acknowledgement (checksum not yet verified).

        Resync: scan for ``42 4D``; a candidate whose length field is neither 28 nor 4
        is a false header (or a foreign frame such as a PMS3003's), so scanning goes on
        from the byte after it. Only if nothing valid turns up is it reported, as a
        :class:`FrameError` rather than a timeout, because the line was not silent.
        """
        bogus: bytes = b""
        while True:
            if not self._seek_header(deadline):
                if bogus:
                    raise self.rejected(FrameError(
                        f"{self._link.name}: only frames with an unexpected length field "
                        f"({int.from_bytes(bogus[2:4], 'big')}) arrived", raw=bogus))
                raise BusTimeout(f"{self._link.name}: no PMS frame within "
                                 f"{self._options.reply_timeout_s} s")
            length_field = self._take(2, deadline)
            if len(length_field) < 2:
                raise self.rejected(FrameError(f"{self._link.name}: truncated PMS frame",
                                              raw=_HEADER + length_field))
            length = int.from_bytes(length_field, "big")
            if length not in (_DATA_LENGTH, _ACK_LENGTH):
                bogus = _HEADER + length_field
                self._pending[:0] = length_field  # they may start the real header
                continue
            body = self._take(length, deadline)
            raw = _HEADER + length_field + body
            if len(body) < length:
                raise self.rejected(FrameError(f"{self._link.name}: truncated PMS frame",
                                              raw=raw))
            log.debug("%s: rx %s", self._link.name, raw.hex(" "))
            return raw

    def _seek_header(self, deadline: float) -> bool:
        """Consume bytes up to and including ``42 4D``; False if the deadline passes."""
        previous = -1
        skipped = bytearray()
        while True:
            byte = self._take(1, deadline)
            if not byte:
                if skipped:
                    log.debug("%s: skipped %s", self._link.name, skipped.hex(" "))
                self.bytes_discarded += len(skipped)
                return False
            if previous == _HEADER[0] and byte[0] == _HEADER[1]:
                if skipped:
                    log.debug("%s: resync skipped %s", self._link.name, skipped.hex(" "))
                self.bytes_discarded += len(skipped)
                return True
            if previous >= 0:
                skipped.append(previous)
            previous = byte[0]
            if len(skipped) > _MAX_SKIP:
                self.bytes_discarded += len(skipped)
                raise self.rejected(FrameError(
                    f"{self._link.name}: no PMS header in {_MAX_SKIP} bytes (wrong baud rate "
                    "or device?)", raw=bytes(skipped[-32:])))

    def _take(self, count: int, deadline: float) -> bytes:
        """Up to ``count`` bytes: first any pushed-back ones, then from the port until the
        deadline. Fewer bytes mean the deadline passed."""
        out = bytearray(self._pending[:count])
        del self._pending[:count]
        while len(out) < count:
            chunk = self._link.read_some(count - len(out))
            if chunk:
                out += chunk
                continue
            if self._link.clock.monotonic() >= deadline:
                break
            self._link.clock.sleep(_EMPTY_READ_PAUSE_S)
        return bytes(out)
