"""PCB Artists I2C decibel meter (PCBA-DBM, MEMS or electret microphone), address 0x48.

Source: PCB Artists "I2C Decibel Meter Programming Manual" (register map, copy in
``EngJay/pa-spl:docs/vendor/programming-manual.md``) and the product sheet (35-120 dB,
±2 dB, 3.3 V). A plain register device without CRC: write the register pointer,
then read with auto-increment; writes auto-increment too.

The module averages the level over Tavg (1000 ms by default, "slow"; 125 ms "fast")
in the selected weighting (A by default, C or none) and, every Tavg, publishes it in
DECIBEL, folds it into MIN/MAX and pushes it into a 100-entry history (0x14 newest).
Each :meth:`PcbaDbm.read` takes the history entries since the previous read and
energy-averages them into the interval's equivalent level, reports MIN/MAX, then
clears history and min/max so the next interval starts empty. With Tavg = 1 s the
history covers 100 s, so intervals up to 100 x Tavg are complete. An entry that lands
between the reads and the clear (a few ms) is lost: at most one Tavg per interval.

A 0 in a level register means "not computed yet" (the advanced module's register map
says so explicitly; the DECIBEL register's reset value is 0): the driver treats it as
no data (:class:`DataNotReady`), never as 0 dB.
"""

from __future__ import annotations

import logging
import math
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from agent.bus.i2c import I2CDevice
from agent.config.options import DriverOptions
from agent.errors import DataNotReady, SensorError
from agent.models import Reading
from agent.sensors import register
from agent.sensors.base import BusKind

log = logging.getLogger(__name__)

ADDRESS = 0x48

# Registers (programming manual, register map).
REG_VERSION = 0x00
REG_ID = 0x01  # ID3..ID0 at 0x01..0x04, most significant first
REG_SCRATCH = 0x05
REG_CONTROL = 0x06
REG_TAVG_HIGH = 0x07
REG_TAVG_LOW = 0x08  # writing it commits TAVG_HIGH:TAVG_LOW, so write the high byte first
REG_RESET = 0x09
REG_DECIBEL = 0x0A  # followed by MIN 0x0B and MAX 0x0C
REG_HISTORY = 0x14  # DBHISTORY_0 (newest) .. DBHISTORY_99 (oldest) at 0x77
HISTORY_LENGTH = 100

# RESET register bits (self-clearing).
RESET_SYSTEM = 0x08  # soft reset to defaults; also wakes from power-down
RESET_HISTORY = 0x04
RESET_MIN_MAX = 0x02
RESET_INTERRUPT = 0x01

# CONTROL register bits.
CONTROL_POWER_DOWN = 0x01
_FILTER_SHIFT = 1  # bits 2:1: 00 none (Z), 01 A (default), 10 C
_FILTER_BITS = {"Z": 0b00, "A": 0b01, "C": 0b10}

KNOWN_VERSIONS = {0x31: "MEMS microphone", 0x32: "MEMS microphone + spectrum analyser",
                  0x81: "external electret microphone"}
READY_S = 0.01
"""The module answers on I2C within 5 ms of power-up or reset; waited twice that."""
SETTLE_S = 1.0
"""DECIBEL is valid about 1 s after power-up or reset."""
SMBUS_BLOCK_MAX = 32
"""Linux SMBus block reads carry at most 32 bytes; the history is read in chunks."""
MIN_TAVG_MS = 10
MAX_TAVG_MS = 10_000
SCRATCH_PROBE = 0x5A

Weighting = Literal["A", "C", "Z"]


def parse_version(value: int) -> tuple[int, int]:
    """VERSION register: (hardware version, firmware version) from bits 7:4 and 3:0."""
    return value >> 4, value & 0x0F


def parse_device_id(data: bytes) -> int:
    """32-bit unique ID from ID3..ID0 (0x01..0x04), ID3 first."""
    return int.from_bytes(data[:4], "big")


def encode_control(weighting: Weighting, *, power_down: bool = False) -> int:
    """CONTROL value: weighting in bits 2:1, interrupts off, optional power-down bit 0."""
    return _FILTER_BITS[weighting] << _FILTER_SHIFT | (CONTROL_POWER_DOWN if power_down else 0)


def encode_tavg(averaging_ms: int) -> bytes:
    """TAVG_HIGH, TAVG_LOW: the averaging time in ms, high byte first."""
    if not MIN_TAVG_MS <= averaging_ms <= MAX_TAVG_MS:
        raise ValueError(f"averaging time {averaging_ms} ms outside "
                         f"{MIN_TAVG_MS}..{MAX_TAVG_MS}")
    return averaging_ms.to_bytes(2, "big")


def parse_level(value: int) -> int | None:
    """A level register: dB as an integer; 0 means not computed yet (invalid)."""
    return value or None


def history_leq(history: bytes) -> tuple[float, int] | None:
    """Energy mean of the valid (non-zero) history entries: (Leq dB, entries used).

    Leq = 10·lg(Σ 10^(L_i/10) / n), each L_i being one Tavg-averaged level.
    None when no entry is valid (nothing completed since the history was cleared).
    """
    levels = [value for value in history if value]
    if not levels:
        return None
    energy = sum(10 ** (level / 10) for level in levels)
    return 10 * math.log10(energy / len(levels)), len(levels)


class PcbaDbmOptions(DriverOptions):
    """Per-sensor settings for the ``[sensors.<id>.options]`` table."""

    weighting: Weighting = Field(
        default="A", description="Frequency weighting: 'A' (default; environmental noise), 'C' or "
        "'Z' (none). The quantities are named after it: laeq/lamin/lamax, lceq/..., lzeq/....")
    averaging_ms: int = Field(
        default=1000, description="Tavg in ms (10..10000): 1000 = slow, 125 = fast. One history "
        "entry per Tavg, 100 entries: keep the sampling interval at or below 100 x Tavg.")

    @model_validator(mode="after")
    def _check(self) -> PcbaDbmOptions:
        if self.weighting not in _FILTER_BITS:
            raise ValueError(f"weighting {self.weighting!r} not one of A, C, Z")
        encode_tavg(self.averaging_ms)
        return self


@register("pcba_dbm", bus=BusKind.I2C, options=PcbaDbmOptions)
class PcbaDbm:
    """PCB Artists decibel meter: interval Leq from the history, min/max per interval."""

    model: ClassVar[str] = "pcba_dbm"
    quantities: ClassVar[tuple[str, ...]] = tuple(
        f"l{w}{kind}" for w in "acz" for kind in ("eq", "min", "max"))

    def __init__(self, bus: I2CDevice, options: PcbaDbmOptions) -> None:
        self._bus = bus
        self.options = options
        self.frames_rejected = 0  # no checksums on this device; kept for the protocol
        self.bytes_discarded = 0
        self.version: int | None = None
        self.device_id: int | None = None
        prefix = "l" + options.weighting.lower()
        self._names = (prefix + "eq", prefix + "min", prefix + "max")
        self._warned_full = False

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        """System reset (defaults; wakes from power-down), probe, configure, settle, clear."""
        self._write(REG_RESET, RESET_SYSTEM)
        self._bus.clock.sleep(READY_S)
        self.identify()
        self._write(REG_SCRATCH, SCRATCH_PROBE)
        if self._bus.read_register(REG_SCRATCH, 1)[0] != SCRATCH_PROBE:
            raise SensorError(f"I2C 0x{self._bus.address:02x}: scratch register does not "
                              "hold its value; not a PCB Artists decibel meter")
        control = encode_control(self.options.weighting)
        tavg = encode_tavg(self.options.averaging_ms)
        self._write(REG_CONTROL, control)
        self._bus.write_register(REG_TAVG_HIGH, tavg)  # auto-increment: HIGH, then LOW commits
        readback = self._bus.read_register(REG_CONTROL, 3)
        if readback != bytes([control]) + tavg:
            raise SensorError(f"decibel meter did not take its settings: wrote "
                              f"{control:02x} {tavg.hex(' ')}, read {readback.hex(' ')}")
        # A new weighting needs one Tavg to take effect and the level ~1 s after reset;
        # then clear what was collected meanwhile (programming manual, FW v1 notes).
        self._bus.clock.sleep(max(SETTLE_S, self.options.averaging_ms / 1000))
        self._write(REG_RESET, RESET_HISTORY | RESET_MIN_MAX)

    def read(self) -> list[Reading]:
        """Leq, min and max since the previous read; :class:`DataNotReady` if no Tavg ended."""
        decibel, low, high = (parse_level(v) for v in self._bus.read_register(REG_DECIBEL, 3))
        if decibel is None:
            raise DataNotReady("decibel meter: no valid level yet (DECIBEL = 0)")
        history = self._read_history()
        result = history_leq(history)
        if result is None:
            raise DataNotReady("decibel meter: no averaging period ended since the last read")
        self._write(REG_RESET, RESET_HISTORY | RESET_MIN_MAX)
        leq, entries = result
        if entries == HISTORY_LENGTH and not self._warned_full:
            self._warned_full = True
            log.warning("decibel meter 0x%02x: history full; the interval is longer than "
                        "100 x Tavg and its Leq covers only the last %d entries",
                        self._bus.address, HISTORY_LENGTH)
        eq_name, min_name, max_name = self._names
        readings = [Reading(eq_name, leq)]
        if low is not None:
            readings.append(Reading(min_name, float(low)))
        if high is not None:
            readings.append(Reading(max_name, float(high)))
        return readings

    def reset(self) -> None:
        """System reset and reconfigure (the settings do not survive a reset)."""
        self.start()

    def stop(self) -> None:
        """Power down (about 100 µA); only a system reset, as :meth:`start` does, wakes it."""
        self._write(REG_CONTROL, encode_control(self.options.weighting, power_down=True))

    def identify(self) -> dict[str, str]:
        """VERSION and the 32-bit unique ID; read-only."""
        self.version = self._bus.read_register(REG_VERSION, 1)[0]
        self.device_id = parse_device_id(self._bus.read_register(REG_ID, 4))
        hardware, firmware = parse_version(self.version)
        if self.version not in KNOWN_VERSIONS:
            log.warning("decibel meter 0x%02x: unknown VERSION 0x%02x", self._bus.address,
                        self.version)
        return {"serial": f"{self.device_id:08x}", "hardware": str(hardware),
                "firmware": str(firmware),
                "variant": KNOWN_VERSIONS.get(self.version, f"unknown 0x{self.version:02x}")}

    # -- wire helpers -------------------------------------------------------------

    def _write(self, register_: int, value: int) -> None:
        self._bus.write_register(register_, bytes([value]))

    def _read_history(self) -> bytes:
        out = bytearray()
        for start in range(0, HISTORY_LENGTH, SMBUS_BLOCK_MAX):
            length = min(SMBUS_BLOCK_MAX, HISTORY_LENGTH - start)
            out += self._bus.read_register(REG_HISTORY + start, length)
        return bytes(out)
