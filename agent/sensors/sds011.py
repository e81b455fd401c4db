"""Nova Fitness SDS011 laser PM2.5/PM10 sensor on a UART (9600 bit/s, 8N1).

Datasheet: Nova Fitness "Laser Dust Sensor Control Protocol V1.3" (2015-07-20),
shared by SDS018 and SDS198. The host sends 19-byte commands
``AA B4 <fn> <d2> <d3> 0… <new id> <target id> <cs> AB``; the sensor answers
with 10-byte frames: ``AA C0`` measurements and ``AA C5`` command replies. Each
checksum is the low byte of the sum of the data bytes (head, command ID and
tail excluded).

The driver keeps the sensor in *query* reporting mode so the agent, not the
sensor, decides when a measurement is taken, and puts it to sleep between
readings to spare the laser (rated about 8000 h). A sleeping sensor answers
nothing but the sleep/work "set" command, so :meth:`Sds011.wake` must come
before a query.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field, model_validator

from agent.bus.crc import sum8
from agent.bus.serial import SerialLink
from agent.config.options import DriverOptions
from agent.errors import BusTimeout, CrcError, FrameError, SensorError
from agent.models import Reading
from agent.sensors import register
from agent.sensors.base import BusKind, RejectCounter

log = logging.getLogger(__name__)

# Frame bytes (protocol V1.3 §1).
_HEAD = 0xAA
_TAIL = 0xAB
_COMMAND_ID = 0xB4
_DATA_REPLY = 0xC0
_COMMAND_REPLY = 0xC5
COMMAND_LENGTH = 19
REPLY_LENGTH = 10
BROADCAST_ID = 0xFFFF
"""Target ID that every sensor on the line obeys."""

# Functions (data byte 1).
FN_REPORTING_MODE = 2
FN_QUERY_DATA = 4
FN_SET_ID = 5
FN_SLEEP_WORK = 6
FN_FIRMWARE = 7
FN_WORKING_PERIOD = 8

# Data byte 2: read the setting or write it.
QUERY = 0
SET = 1

# Data byte 3 values.
MODE_ACTIVE = 0
MODE_QUERY = 1
SLEEP = 0
WORK = 1
PERIOD_CONTINUOUS = 0
MAX_PERIOD_MIN = 30


@dataclass(frozen=True, slots=True)
class CommandReply:
    """An ``AA C5`` reply: the function it answers, data bytes 2–4 and the sender's ID.

    For the firmware reply (function 7) data 2–4 are year, month and day.
    """

    function: int
    data2: int
    data3: int
    data4: int
    device_id: int


def encode_command(function: int, data2: int = QUERY, data3: int = 0,
                   device_id: int = BROADCAST_ID, new_id: int = 0) -> bytes:
    """Build the 19-byte host command; ``new_id`` is only used by function 5 (set ID)."""
    for name, value, top in (("function", function, 0xFF), ("data2", data2, 0xFF),
                             ("data3", data3, 0xFF), ("device_id", device_id, 0xFFFF),
                             ("new_id", new_id, 0xFFFF)):
        if not 0 <= value <= top:
            raise ValueError(f"{name} {value} outside 0..{top:#x}")
    body = bytearray(15)  # data bytes 1..15 = frame bytes 2..16
    body[0], body[1], body[2] = function, data2, data3
    body[11:13] = new_id.to_bytes(2, "big")  # frame bytes 13-14
    body[13:15] = device_id.to_bytes(2, "big")  # frame bytes 15-16, high byte first
    # Checksum = low 8 bits of the sum of data bytes 1..15 (frame bytes 2..16).
    return bytes([_HEAD, _COMMAND_ID, *body, sum8(body), _TAIL])


def _verify(frame: bytes, kind: int) -> None:
    """Check length, head, kind, tail and checksum of a 10-byte sensor frame."""
    if len(frame) != REPLY_LENGTH:
        raise FrameError(f"SDS011 frame has {len(frame)} bytes, expected {REPLY_LENGTH}",
                         raw=frame)
    if frame[0] != _HEAD or frame[1] != kind or frame[9] != _TAIL:
        raise FrameError(f"SDS011 frame is not an {_HEAD:02X} {kind:02X} … {_TAIL:02X} frame",
                         raw=frame)
    # Checksum = low 8 bits of the sum of data bytes 1..6 (frame bytes 2..7).
    expected = sum8(frame[2:8])
    if expected != frame[8]:
        raise CrcError("SDS011 checksum mismatch", expected=expected, received=frame[8],
                       raw=frame)


def parse_measurement(frame: bytes) -> tuple[float, float, int]:
    """Decode ``AA C0`` into (PM2.5 µg/m³, PM10 µg/m³, device ID)."""
    _verify(frame, _DATA_REPLY)
    # PM2.5 = (PM25_H * 256 + PM25_L) / 10; PM10 likewise (protocol V1.3, query data reply).
    pm2_5 = int.from_bytes(frame[2:4], "little") / 10
    pm10 = int.from_bytes(frame[4:6], "little") / 10
    return pm2_5, pm10, int.from_bytes(frame[6:8], "big")


def parse_reply(frame: bytes) -> CommandReply:
    """Decode an ``AA C5`` command reply."""
    _verify(frame, _COMMAND_REPLY)
    return CommandReply(frame[2], frame[3], frame[4], frame[5],
                        int.from_bytes(frame[6:8], "big"))


def parse_firmware(frame: bytes) -> tuple[str, int]:
    """Decode the firmware reply into ("YY-MM-DD", device ID), formatted as airrohr prints it."""
    reply = parse_reply(frame)
    if reply.function != FN_FIRMWARE:
        raise FrameError(f"SDS011 reply is for function {reply.function}, not firmware",
                         raw=frame)
    return f"{reply.data2:02d}-{reply.data3:02d}-{reply.data4:02d}", reply.device_id


class Sds011Options(DriverOptions):
    """Per-sensor settings for the ``[sensors.<id>.options]`` table."""

    device_id: int = Field(
        default=BROADCAST_ID, description="Device ID to address, 0..0xFFFF. 0xFFFF (broadcast) "
        "talks to whichever sensor is on the line; any other value addresses that sensor only and "
        "ignores frames carrying another ID.")
    reply_timeout_s: float = Field(
        default=1.5, description="Seconds to wait for a reply frame (the sensor reports once per 1 "
        "s, \"1+0.5 s\"). The serial link's own read timeout should not be longer than this.")
    continuous_working_period: bool = Field(
        default=True, description="At start, set the working period to continuous (0) if another "
        "host left it periodic: in a periodic cycle the sensor sleeps on its own and misses "
        "queries. The period survives power-off, so it is read first and written only when "
        "needed.")

    @model_validator(mode="after")
    def _check(self) -> Sds011Options:
        if not 0 <= self.device_id <= 0xFFFF:
            raise ValueError(f"device_id {self.device_id} outside 0..0xFFFF")
        if self.reply_timeout_s <= 0:
            raise ValueError("reply_timeout_s must be positive")
        return self


@register("sds011", bus=BusKind.SERIAL, options=Sds011Options)
class Sds011(RejectCounter):
    """SDS011 in query mode, duty-cycled with the sleep/work command."""

    model: ClassVar[str] = "sds011"
    quantities: ClassVar[tuple[str, ...]] = ("pm2_5", "pm10")

    def __init__(self, bus: SerialLink, options: Sds011Options) -> None:
        self._link = bus
        self.options = options
        self.sensor_id: int | None = None
        """The ID the sensor answered with (learned at start; useful with broadcast)."""
        self.asleep = False
        """Whether this driver last put the sensor to sleep."""

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        """Wake the sensor, switch it to query mode and make its working period continuous."""
        self.wake()
        reply = self._exchange(FN_REPORTING_MODE, SET, MODE_QUERY)
        if (reply.data2, reply.data3) != (SET, MODE_QUERY):
            raise SensorError(f"SDS011 did not confirm query mode: {reply}")
        if self.options.continuous_working_period:
            period = self._exchange(FN_WORKING_PERIOD, QUERY).data3
            if period != PERIOD_CONTINUOUS:
                log.info("SDS011 working period was %d min; setting continuous", period)
                reply = self._exchange(FN_WORKING_PERIOD, SET, PERIOD_CONTINUOUS)
                if reply.data3 != PERIOD_CONTINUOUS:
                    raise SensorError(f"SDS011 did not confirm continuous period: {reply}")

    def read(self) -> list[Reading]:
        """Query one measurement; a sleeping sensor stays silent (:class:`BusTimeout`)."""
        self._send(encode_command(FN_QUERY_DATA, device_id=self.options.device_id))
        pm2_5, pm10, device_id = parse_measurement(self._receive(_DATA_REPLY))
        self.sensor_id = device_id
        return [Reading("pm2_5", pm2_5), Reading("pm10", pm10)]

    def reset(self) -> None:
        """Re-send wake and query mode, e.g. after a power cycle or another host's commands."""
        self.start()

    def stop(self) -> None:
        """Sleep: fan and laser off until the next start or wake."""
        self.sleep()

    # -- DutyCycled / Identifiable ------------------------------------------------

    def sleep(self) -> None:
        """Send sleep (``06 01 00``); the sensor then ignores everything but wake."""
        reply = self._exchange(FN_SLEEP_WORK, SET, SLEEP)
        if reply.data3 != SLEEP:
            raise SensorError(f"SDS011 did not confirm sleep: {reply}")
        self.asleep = True

    def wake(self) -> None:
        """Send work (``06 01 01``); readings settle about 30 s later (profile wake_lead_s)."""
        reply = self._exchange(FN_SLEEP_WORK, SET, WORK)
        if reply.data3 != WORK:
            raise SensorError(f"SDS011 did not confirm work: {reply}")
        self.asleep = False

    def identify(self) -> dict[str, str]:
        """Firmware date ("15-07-10") and device ID ("a160"); needs an awake sensor."""
        self._send(encode_command(FN_FIRMWARE, QUERY, 0, self.options.device_id))
        firmware, device_id = parse_firmware(self._receive(_COMMAND_REPLY, FN_FIRMWARE))
        self.sensor_id = device_id
        return {"firmware": firmware, "device_id": f"{device_id:04x}"}

    # -- wire helpers -------------------------------------------------------------

    def _exchange(self, function: int, data2: int = QUERY, data3: int = 0) -> CommandReply:
        self._send(encode_command(function, data2, data3, self.options.device_id))
        reply = parse_reply(self._receive(_COMMAND_REPLY, function))
        self.sensor_id = reply.device_id
        return reply

    def _send(self, command: bytes) -> None:
        # Stale active-mode frames or late replies would be mistaken for the answer.
        self._link.discard_input()
        log.debug("%s: sds011 tx %s", self._link.name, command.hex(" "))
        self._link.write(command)

    def _receive(self, kind: int, function: int | None = None) -> bytes:
        """Return the next valid ``AA <kind>`` frame (for ``function`` if a C5 reply).

        Resynchronises on the head byte: line noise, frames of the other kind
        (active-mode C0 frames while a C5 is awaited, and vice versa), replies
        to other functions and frames from other device IDs are skipped. A bad
        checksum on a frame of the awaited kind raises :class:`CrcError`.
        """
        deadline = self._link.clock.monotonic() + self.options.reply_timeout_s
        pending = bytearray()
        seen = bytearray()
        while True:
            frame = self._take_frame(pending)
            if frame is not None:
                if frame[1] == kind:
                    self.checked(_verify, frame, kind)
                    if self._wanted(frame, function):
                        log.debug("%s: sds011 rx %s", self._link.name, frame.hex(" "))
                        return frame
                else:
                    log.debug("%s: sds011 skipped %s", self._link.name, frame.hex(" "))
                continue
            if self._link.clock.monotonic() >= deadline:
                break
            chunk = self._link.read_some(REPLY_LENGTH - len(pending))
            seen += chunk
            pending += chunk
        if len(pending) >= 2 and pending[1] == kind:
            raise self.rejected(FrameError(f"{self._link.name}: SDS011 frame truncated",
                                           raw=bytes(seen)))
        raise BusTimeout(f"{self._link.name}: SDS011 did not answer", raw=bytes(seen))

    def _take_frame(self, pending: bytearray) -> bytes | None:
        """Cut the next 10-byte candidate frame out of ``pending``, dropping noise."""
        while True:
            head = pending.find(_HEAD)
            if head < 0:
                self.bytes_discarded += len(pending)
                pending.clear()
                return None
            self.bytes_discarded += head
            del pending[:head]
            if len(pending) < REPLY_LENGTH:
                return None
            if pending[1] in (_DATA_REPLY, _COMMAND_REPLY) and pending[9] == _TAIL:
                frame = bytes(pending[:REPLY_LENGTH])
                del pending[:REPLY_LENGTH]
                return frame
            if pending[1] in (_DATA_REPLY, _COMMAND_REPLY):
                # A header followed by the wrong tail: a frame cut short by noise.
                self.frames_rejected += 1
            self.bytes_discarded += 1
            del pending[:1]  # a head byte inside noise; search again one byte on

    def _wanted(self, frame: bytes, function: int | None) -> bool:
        device_id = int.from_bytes(frame[6:8], "big")
        if self.options.device_id not in (BROADCAST_ID, device_id):
            return False  # another sensor on the line
        return function is None or frame[2] == function
