"""DNMS (Digital Noise Measurement Sensor, Sensor.Community) on I2C, address 0x55.

Sources: the host driver in ``opendata-stuttgart/sensors-software``
(``airrohr-firmware/dnms_i2c.h``/``.cpp`` and ``fetchSensorDNMS`` in
``airrohr-firmware.ino``) and the device firmware in ``hbitter/DNMS``
(Teensy ``DNMS_V2.5.1.ino`` and ``DNMS_V6.0.x.ino``). The DNMS is a Teensy
running an I2C slave that speaks Sensirion-style framing: 16-bit commands
without CRC, replies as big-endian words each followed by CRC-8 (poly 0x31,
init 0xFF; :mod:`agent.sensors._sensirion`). Levels are IEEE-754 floats sent
big-endian as two words, high word first.

The device averages its own ~125 ms (V2) or ~93 ms (V6) blocks into an
interval that the *host* closes with CALCULATE_LEQ: LAeq is the energy mean of
the blocks since the previous calculate, LAmin/LAmax their extremes. At the end
of the next block it latches the result and raises data-ready. So each
:meth:`Dnms.read` closes the interval since the previous read; the agent's
schedule sets the interval, as airrohr's send interval does.
"""

from __future__ import annotations

import logging
import math
from functools import partial
from typing import ClassVar

from pydantic import Field, model_validator

from agent.bus.i2c import I2CDevice
from agent.config.options import DriverOptions
from agent.errors import DataNotReady, SensorError
from agent.models import Reading
from agent.sensors import register
from agent.sensors._sensirion import SensirionCommand, SensirionDriver, decode_ascii, decode_floats
from agent.sensors.base import BusKind

log = logging.getLogger(__name__)

ADDRESS = 0x55
RESET_WAIT_S = 1.0
"""airrohr's initDNMS waits 1000 ms between RESET and READ_VERSION."""
POLL_INTERVAL_S = 0.005
"""Pause before each data-ready poll (hbitter's host driver polls 40 x 5 ms)."""
REUSE_S = 1.0
"""A calculate or latch younger than this is resumed by the next read (the sampler's
immediate retry after a bus error) instead of starting a new interval."""
VERSION_WORDS = 9
"""airrohr reads DNMS_MAX_VERSION_LEN = 18 characters: 9 words, 27 bytes."""

_RESET = SensirionCommand(0x0001, "reset")
_READ_VERSION = SensirionCommand(0x0002, "read_version", reply_words=VERSION_WORDS)
_CALCULATE_LEQ = SensirionCommand(0x0003, "calculate_leq")
_READ_DATA_READY = SensirionCommand(0x0004, "read_data_ready", reply_words=1)
_READ_LEQ = SensirionCommand(0x0005, "read_leq", reply_words=6)
_READ_LEQ_Z = SensirionCommand(0x0011, "read_leq_z", reply_words=6)

Levels = tuple[float, float, float]
"""(Leq, Lmin, Lmax) in dB for one interval."""


def parse_version(data: bytes) -> str:
    """Decode the READ_VERSION reply: ASCII in byte pairs, NUL padded ("DNMS Version 2.5.1")."""
    return decode_ascii(_READ_VERSION.interpret(data)).strip()


def parse_data_ready(data: bytes) -> bool:
    """READ_DATA_READY: word 0x0001 once the interval is latched, 0x0000 before."""
    return _READ_DATA_READY.interpret(data)[0] != 0


def parse_levels(data: bytes, *, what: str = "DNMS levels") -> Levels:
    """Decode 18 bytes (6 words with CRC) into (Leq, Lmin, Lmax) dB.

    Each float is big-endian IEEE-754: the Teensy sends b[3] b[2] CRC b[1] b[0] CRC
    of its little-endian float, and airrohr reassembles it with be32_to_cpu. A non-finite
    level is a SensorError.
    """
    leq, low, high = decode_floats(data, 3, what=what, require_finite=True)
    return leq, low, high


def is_filler(data: bytes) -> bool:
    """True when a reply is idle-bus filler: the firmware had no answer prepared.

    The DNMS acknowledges commands it does not know and then has nothing to send,
    so the host reads a constant byte (SDA held high: 0xFF) instead of words.
    """
    return len(set(data)) == 1 and data[0] in (0x00, 0xFF)


class DnmsOptions(DriverOptions):
    """Per-sensor settings for the ``[sensors.<id>.options]`` table."""

    read_lzeq: bool = Field(
        default=False, description="Also read LZeq (command 0x0011, Z-weighted equivalent level of "
        "the same interval). Offered by the Teensy 4.0 firmware V5/V6 (checked in V6.0.x); the "
        "V2.x firmware ignores the command and the driver then raises SensorError.")
    ready_timeout_s: float = Field(
        default=0.2, description="Seconds to poll data-ready after calculate-LEQ, in 5 ms steps. "
        "The device latches at the end of its current block (up to ~125 ms on V2), so airrohr's "
        "~40 ms budget often misses it; a slot that misses raises DataNotReady.")

    @model_validator(mode="after")
    def _check(self) -> DnmsOptions:
        if not 0 < self.ready_timeout_s <= 5:
            raise ValueError(f"ready_timeout_s {self.ready_timeout_s} outside (0, 5] s")
        return self


@register("dnms", bus=BusKind.I2C, options=DnmsOptions)
class Dnms(SensirionDriver):
    """DNMS noise module: one LAeq/LAmin/LAmax triple per read interval."""

    model: ClassVar[str] = "dnms"
    quantities: ClassVar[tuple[str, ...]] = ("laeq", "lamin", "lamax", "lzeq")

    def __init__(self, bus: I2CDevice, options: DnmsOptions) -> None:
        self._bus = bus
        self.options = options
        self.version: str | None = None
        self._calculated_at: float | None = None
        """When the open calculate-LEQ was sent (None: no interval being closed)."""
        self._latched_at: float | None = None
        """When data-ready was seen for a result not yet read completely."""
        self._a_levels: Levels | None = None
        """LA levels read while the LZ read of the same interval is still pending."""

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        """RESET (V2 firmware only starts its audio processing then), check the version,
        and open a fresh interval so the first read covers start to read."""
        self._forget()
        self._send(_RESET)
        self._bus.clock.sleep(RESET_WAIT_S)
        self.version = self._read_version()
        self._calculate()

    def read(self) -> list[Reading]:
        """Close the interval since the previous read and return its levels.

        Raises :class:`DataNotReady` when the device has not latched within
        ``ready_timeout_s`` (e.g. still in its start phase).
        """
        now = self._bus.clock.monotonic()
        if not self._fresh(self._latched_at, now):
            self._a_levels = None
            if not self._fresh(self._calculated_at, now):
                self._calculate()
            self._wait_ready()
            self._latched_at, self._calculated_at = self._bus.clock.monotonic(), None
        if self._a_levels is None:
            self._a_levels = self._levels(_READ_LEQ)
        leq, low, high = self._a_levels
        readings = [Reading("laeq", leq), Reading("lamin", low), Reading("lamax", high)]
        if self.options.read_lzeq:
            readings.extend(self._lzeq())
        self._latched_at, self._a_levels = None, None
        return readings

    def reset(self) -> None:
        """airrohr's recovery: RESET and re-initialise (V6 also clears its accumulators)."""
        self.start()

    def stop(self) -> None:
        """The DNMS has no stop or sleep command: it keeps measuring. Forget the interval."""
        self._forget()

    def identify(self) -> dict[str, str]:
        """Firmware version string, e.g. {"firmware": "DNMS Version 2.5.1"}."""
        if self.version is None:
            self.version = self._read_version()
        return {"firmware": self.version}

    # -- protocol steps -----------------------------------------------------------

    def _read_version(self) -> str:
        version = self._query(_READ_VERSION, parse_version)
        if not version.startswith("DNMS"):
            raise SensorError(f"device at 0x{self._bus.address:02x} is not a DNMS "
                              f"(version {version!r})")
        log.debug("dnms 0x%02x: %s", self._bus.address, version)
        return version

    def _calculate(self) -> None:
        self._send(_CALCULATE_LEQ)
        self._calculated_at = self._bus.clock.monotonic()

    def _wait_ready(self) -> None:
        polls = max(1, math.ceil(self.options.ready_timeout_s / POLL_INTERVAL_S))
        for _ in range(polls):
            self._bus.clock.sleep(POLL_INTERVAL_S)
            if self._query(_READ_DATA_READY, parse_data_ready):
                return
        raise DataNotReady(f"dnms 0x{self._bus.address:02x}: interval not latched after "
                           f"{self.options.ready_timeout_s} s")

    def _levels(self, command: SensirionCommand) -> Levels:
        levels = self._query(command, partial(parse_levels, what=command.name))
        if levels == (0.0, 0.0, 0.0):
            # V5/V6 firmware zeroes the latched values once they have been read.
            self._forget()
            raise DataNotReady(f"dnms: {command.name} returned zeros (already read)")
        return levels

    def _lzeq(self) -> list[Reading]:
        data = _READ_LEQ_Z.transfer(self._bus)
        if is_filler(data):
            raise SensorError("DNMS firmware does not answer READ_LEQ_Z (0x0011); "
                              "set read_lzeq = false for V2.x firmware")
        leq, _, _ = self.checked(partial(parse_levels, what=_READ_LEQ_Z.name), data)
        if leq == 0.0:
            log.debug("dnms: LZeq already read for this interval; reporting LA only")
            return []
        return [Reading("lzeq", leq)]

    def _fresh(self, stamp: float | None, now: float) -> bool:
        return stamp is not None and now - stamp < REUSE_S

    def _forget(self) -> None:
        self._calculated_at = self._latched_at = None
        self._a_levels = None
