"""A generic Modbus RTU slave: plays whatever transmitter a ``driver = "modbus"`` profile describes.

The register map comes from the profile's ``[driver_options]`` (slave id, function,
register tables), read through the one description model the driver reads too
(:class:`agent.config.modbus.ModbusOptions`), and the values from its [[quantities]]
ranges: a level in dB walks between 35 and 80, anything else within the lower part of
its valid range. Words are encoded here independently of the driver's decoding, so
tests cross-check two readings of the same profile.

Slave behaviour per MODBUS over Serial Line V1.02 and the application protocol:

* a frame ends after 3.5 character times of silence (at the profile's baud rate);
  the request is handled then, as a real slave does;
* a frame with a bad CRC, or for another slave id, gets no answer (silence); a
  broadcast (slave 0) is never answered;
* a function other than the profile's read function gets exception 01, a read
  touching an unmapped register 02, a quantity of 0 or above 125 (or a wrong
  request length) 03.

Faults: the :class:`~agent.emulators.serial_pty.PtySerialEmulator` faults act on
replies (:meth:`ModbusSlave.corrupt` breaks the CRC); :meth:`ModbusSlave.raise_next`
queues exception replies; ``reply_slave_id`` makes it answer under another id.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from agent.bus.crc import crc16_modbus
from agent.clock import SYSTEM
from agent.config.modbus import MAX_REGISTERS, ModbusOptions, RegisterSpec
from agent.emulators import register
from agent.emulators._log import BoundedLog
from agent.emulators._walk import Walk

if TYPE_CHECKING:
    from agent.config.profiles import Profile

def encode(spec: RegisterSpec, value: float) -> list[int]:
    """Physical value to register words: raw = (value - offset) / scale, the device's side
    of the description (the driver decodes on its own)."""
    raw = (value - spec.offset) / spec.scale
    if spec.float32:
        data = struct.pack(">f", raw)
    else:
        bits = 16 * spec.words
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if spec.signed \
            else (0, (1 << bits) - 1)
        data = max(low, min(high, round(raw))).to_bytes(2 * spec.words, "big",
                                                      signed=spec.signed)
    words = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
    return words if spec.word_order == "big" else words[::-1]


def crc_frame(body: bytes) -> bytes:
    """Append CRC-16/MODBUS, low byte first."""
    return body + crc16_modbus(body).to_bytes(2, "little")


def gap_s(baudrate: int) -> float:
    """End-of-frame silence: 3.5 characters of 11 bits; 1.75 ms above 19200 bit/s."""
    return 0.00175 if baudrate > 19200 else 3.5 * 11 / baudrate


DEFAULT_REGISTERS = ({"quantity": "sound_level", "address": 0, "scale": 0.1},)
DEFAULT_RANGES = {"sound_level": (30.0, 130.0, "dB")}


class ModbusSlave:
    """One RTU slave on a serial line (a :class:`~agent.emulators.serial_pty.SerialDevice`).

    With no arguments it plays a noise transmitter at slave 1, holding register 0 in
    tenths of a dB, 4800 bit/s. ``values`` pins quantities (physical units).
    """

    def __init__(self, *, slave_id: int = 1, function: int = 3,
                 registers: Iterable[Mapping[str, Any] | RegisterSpec] = DEFAULT_REGISTERS,
                 ranges: Mapping[str, tuple[float, float, str]] | None = None,
                 baudrate: int = 4800, seed: int = 0,
                 values: Mapping[str, float] | None = None,
                 clock: Callable[[], float] = SYSTEM.monotonic) -> None:
        self.slave_id = slave_id
        self.function = function
        self.registers = [RegisterSpec.model_validate(entry) for entry in registers]
        self.baudrate = baudrate
        self.gap_s = gap_s(baudrate)
        self._clock = clock
        self._rng = random.Random(seed)
        self.values: dict[str, float] = dict(values or {})
        self._walks = {reg.quantity: self._walk(reg.quantity, (ranges or DEFAULT_RANGES))
                       for reg in self.registers}
        self._map: dict[int, tuple[RegisterSpec, int]] = {}
        for reg in self.registers:
            for index in range(reg.words):
                self._map[reg.address + index] = (reg, index)
        self.reply_slave_id: int | None = None
        """Answer under this id instead of our own (a confused or duplicate slave)."""
        self._exceptions: list[int] = []
        self._rx = bytearray()
        self._last_rx = 0.0
        # Counters for tests.
        self.requests: BoundedLog[bytes] = BoundedLog()
        """Every CRC-valid frame addressed to this slave."""
        self.frames_bad_crc = 0
        self.frames_for_others = 0
        self.exceptions_sent = 0

    @classmethod
    def from_profile(cls, profile: Profile, **kwargs: Any) -> ModbusSlave:
        """The device a ``driver = "modbus"`` profile describes."""
        options = ModbusOptions.model_validate(profile.driver_options)
        ranges = {q.name: (q.min, q.max, q.unit) for q in profile.quantities}
        settings: dict[str, Any] = {
            "slave_id": options.slave_id, "function": options.function,
            "registers": options.registers, "ranges": ranges,
            "baudrate": profile.baudrate or 9600}
        settings.update(kwargs)
        return cls(**settings)

    def _walk(self, quantity: str, ranges: Mapping[str, tuple[float, float, str]]) -> Walk:
        low, high, unit = ranges.get(quantity, (0.0, 100.0, ""))
        if unit == "dB":
            low, high = max(low, 35.0), min(high, 80.0)
            return Walk(self._rng.uniform(45.0, 60.0), low, high, 0.8)
        span = high - low
        low, high = low + 0.05 * span, low + 0.6 * span
        return Walk(self._rng.uniform(low, high), low, high, span * 0.005)

    # -- fault injection -----------------------------------------------------------------

    def raise_next(self, code: int, count: int = 1) -> None:
        """Answer the next ``count`` valid requests with exception ``code``."""
        self._exceptions.extend([code] * count)

    # -- SerialDevice --------------------------------------------------------------------

    def receive(self, data: bytes) -> list[bytes]:
        """Collect bytes; a silence of 3.5 characters (seen in :meth:`poll`) ends the frame."""
        now = self._clock()
        if self._rx and now - self._last_rx >= self.gap_s:
            self._rx.clear()  # the previous fragment was never completed
        self._rx += data
        self._last_rx = now
        return []

    def poll(self, now: float) -> list[bytes]:
        if not self._rx or now - self._last_rx < self.gap_s:
            return []
        frame = bytes(self._rx)
        self._rx.clear()
        return self.handle(frame)

    def corrupt(self, frame: bytes) -> bytes:
        """Flip the CRC's low byte (the second to last byte of every RTU frame)."""
        return frame[:-2] + bytes([frame[-2] ^ 0xFF]) + frame[-1:]

    # -- request handling ----------------------------------------------------------------

    def handle(self, frame: bytes) -> list[bytes]:
        """Answer one complete request frame (empty list: stay silent)."""
        if len(frame) < 4 or crc16_modbus(frame[:-2]) != int.from_bytes(frame[-2:], "little"):
            self.frames_bad_crc += 1
            return []
        if frame[0] != self.slave_id:
            self.frames_for_others += 1
            return []
        self.requests.append(frame)
        function = frame[1]
        code = self._exceptions.pop(0) if self._exceptions else self._refusal(frame)
        if code:
            self.exceptions_sent += 1
            return [crc_frame(bytes([self.slave_id, function | 0x80, code]))]
        address = int.from_bytes(frame[2:4], "big")
        count = int.from_bytes(frame[4:6], "big")
        data = b"".join(word.to_bytes(2, "big") for word in self._words(address, count))
        slave = self.slave_id if self.reply_slave_id is None else self.reply_slave_id
        return [crc_frame(bytes([slave, function, len(data)]) + data)]

    def _refusal(self, frame: bytes) -> int:
        """The exception code a request earns (0: serve it)."""
        if frame[1] != self.function:
            return 0x01  # ILLEGAL FUNCTION
        if len(frame) != 8:
            return 0x03  # ILLEGAL DATA VALUE: a read request is always 8 bytes
        address = int.from_bytes(frame[2:4], "big")
        count = int.from_bytes(frame[4:6], "big")
        if not 1 <= count <= MAX_REGISTERS:
            return 0x03
        if any(a not in self._map for a in range(address, address + count)):
            return 0x02  # ILLEGAL DATA ADDRESS
        return 0

    def _words(self, address: int, count: int) -> list[int]:
        encoded: dict[str, list[int]] = {}
        out = []
        for a in range(address, address + count):
            reg, index = self._map[a]
            if reg.quantity not in encoded:
                encoded[reg.quantity] = encode(reg, self.value(reg.quantity))
            out.append(encoded[reg.quantity][index])
        return out

    def value(self, quantity: str) -> float:
        """The current physical value: pinned, or the next step of its walk."""
        if quantity in self.values:
            return self.values[quantity]
        return self._walks[quantity].advance(self._rng)


@register("modbus")
def modbus_device(profile: Profile | None = None, **kwargs: Any) -> ModbusSlave:
    """Factory: ``factory(profile=profile)`` from the simulator; no arguments for a noise
    transmitter at slave 1."""
    if profile is not None:
        return ModbusSlave.from_profile(profile, **kwargs)
    return ModbusSlave(**kwargs)
