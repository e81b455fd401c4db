"""Emulated Sensirion SCD30 (I2C 0x61): the module's side of the wire protocol.

It keeps the real module's state: settings in "non-volatile memory"
(interval, ASC, FRC reference, altitude, temperature offset, measuring or
not), a measurement buffer whose data-ready flag latches until the buffer is
read, and a new sample every measurement interval on its own clock. Argument
words must carry a correct CRC or the write is NACKed and nothing changes;
unknown commands are NACKed; a soft reset makes it deaf for the boot time.

Values are a seeded random walk unless pinned with constructor arguments.
Fault injection: :meth:`corrupt_next` (bad CRC in replies), :meth:`nack_next`,
:meth:`hold_not_ready`. The small word helpers here are shared with the
SCD4x emulator.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.bus.crc import sensirion_crc8
from agent.emulators import register
from agent.emulators.i2c_bus import Nack

ADDRESS = 0x61
READ_DELAY_S = 0.003
"""The host must wait this long after a command before reading; earlier reads are refused."""
BOOT_S = 2.0


def encode_reply(words: list[int]) -> bytes:
    """Words as the sensor sends them: big-endian, each followed by its CRC-8."""
    out = bytearray()
    for word in words:
        raw = word.to_bytes(2, "big")
        out += raw
        out.append(sensirion_crc8(raw))
    return bytes(out)


def split_write(data: bytes) -> tuple[int, list[int]]:
    """Command code and argument words of a host write; NACK a bad length or CRC."""
    if len(data) < 2 or (len(data) - 2) % 3:
        raise Nack(f"malformed write {data.hex(' ')}")
    args = []
    for start in range(2, len(data), 3):
        raw = data[start:start + 2]
        if sensirion_crc8(raw) != data[start + 2]:
            raise Nack(f"argument CRC mismatch in {data.hex(' ')}")
        args.append(int.from_bytes(raw, "big"))
    return int.from_bytes(data[:2], "big"), args


def float_words(*values: float) -> list[int]:
    """Big-endian float32 values split into words, most significant word first."""
    packed = struct.pack(f">{len(values)}f", *values)
    return [int.from_bytes(packed[i:i + 2], "big") for i in range(0, len(packed), 2)]


@dataclass
class Walk:
    """A bounded random walk, or a constant when ``step`` is 0."""

    value: float
    low: float
    high: float
    step: float

    def advance(self, rng: random.Random) -> float:
        if self.step:
            self.value = min(self.high, max(self.low, self.value + rng.gauss(0.0, self.step)))
        return self.value


class Faults:
    """Counters for injected faults, shared by the Sensirion emulators."""

    def __init__(self) -> None:
        self.corrupt = 0
        self.nack = 0
        self.not_ready = 0

    def take(self, name: str) -> bool:
        """Consume one pending fault of this kind; True when one was pending."""
        pending = getattr(self, name)
        if pending:
            setattr(self, name, pending - 1)
        return bool(pending)


class Scd30Device:
    """The SCD30 module, attachable to an :class:`~agent.emulators.i2c_bus.EmulatedI2CBus`."""

    def __init__(self, *, seed: int = 0, co2_ppm: float | None = None,
                 temperature_c: float | None = None, humidity_pct: float | None = None,
                 sample_interval_s: float | None = None, boot_s: float = BOOT_S,
                 firmware: int = 0x0342, measuring: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``sample_interval_s`` overrides the configured interval for sample timing only
        (tests and demos); pinned values stay constant; ``clock`` is the device's time."""
        self._rng = random.Random(seed)
        self._co2 = Walk(co2_ppm if co2_ppm is not None else 480.0, 400.0, 2500.0,
                         0.0 if co2_ppm is not None else 4.0)
        self._temperature = Walk(temperature_c if temperature_c is not None else 21.0,
                                 -10.0, 45.0, 0.0 if temperature_c is not None else 0.05)
        self._humidity = Walk(humidity_pct if humidity_pct is not None else 55.0, 5.0, 98.0,
                              0.0 if humidity_pct is not None else 0.3)
        self._sample_interval_s = sample_interval_s
        self._boot_s = boot_s
        self._clock = clock
        self.firmware = firmware
        self.faults = Faults()
        self.log: list[tuple[str, bytes]] = []
        """Every transaction as ("w", bytes written) or ("r", bytes returned)."""
        # Settings the module keeps in non-volatile memory.
        self.interval_s = 2
        self.asc = False
        self.frc_ppm = 400
        self.altitude_m = 0
        self.temperature_offset_ticks = 0
        self.ambient_pressure_mbar = 0
        self.measuring = False
        # Run-time state.
        self.samples = 0
        self.co2_correction = 0.0
        self._ready = False
        self._buffer: list[int] | None = None
        self._reply: bytes | None = None
        self._reply_at = 0.0
        self._after_read: Callable[[], None] | None = None
        self._busy_until = 0.0
        self._next_sample = 0.0
        if measuring:
            self._begin(self._clock())

    # -- fault injection ---------------------------------------------------------------

    def corrupt_next(self, count: int = 1) -> None:
        """Send a wrong CRC in the next ``count`` replies."""
        self.faults.corrupt += count

    def nack_next(self, count: int = 1) -> None:
        """Refuse the next ``count`` transactions."""
        self.faults.nack += count

    def hold_not_ready(self, count: int = 1) -> None:
        """Report "not ready" to the next ``count`` data-ready queries, data kept."""
        self.faults.not_ready += count

    # -- bus side ------------------------------------------------------------------------

    def on_write(self, data: bytes) -> None:
        now = self._tick()
        self.log.append(("w", bytes(data)))
        if self.faults.take("nack") or now < self._busy_until:
            raise Nack("SCD30 refused the write")
        code, args = split_write(data)
        self._reply, self._after_read, self._reply_at = None, None, now + READ_DELAY_S
        self._dispatch(code, args, now)

    def on_read(self, length: int) -> bytes:
        now = self._tick()
        if self.faults.take("nack") or now < self._busy_until or self._reply is None \
                or now < self._reply_at:
            self.log.append(("r", b""))
            raise Nack("SCD30 has nothing to send")
        data = bytearray(self._reply[:length].ljust(length, b"\xff"))
        if self.faults.take("corrupt") and len(data) >= 3:
            data[2] ^= 0xFF
        if self._after_read is not None:
            self._after_read()
        self._reply, self._after_read = None, None
        self.log.append(("r", bytes(data)))
        return bytes(data)

    # -- behaviour -----------------------------------------------------------------------

    def _dispatch(self, code: int, args: list[int], now: float) -> None:  # noqa: PLR0912
        settings = {0x4600: ("interval_s", 2, 1800), 0x5306: ("asc", 0, 1),
                    0x5204: ("frc_ppm", 400, 2000), 0x5403: ("temperature_offset_ticks",
                                                             0, 0xFFFF),
                    0x5102: ("altitude_m", 0, 0xFFFF)}
        if code in settings and len(args) <= 1:
            name, low, high = settings[code]
            if not args:
                self._reply = encode_reply([int(getattr(self, name))])
                return
            if not low <= args[0] <= high:
                raise Nack(f"SCD30 {name} {args[0]} out of range")
            if code == 0x5306:
                self.asc = bool(args[0])
            elif code == 0x5204:
                self.co2_correction = args[0] - self._co2.value
                self.frc_ppm = args[0]
            else:
                setattr(self, name, args[0])
            return
        if code == 0x0010 and len(args) == 1:
            if args[0] and not 700 <= args[0] <= 1400:
                raise Nack(f"SCD30 pressure {args[0]} out of range")
            self.ambient_pressure_mbar = args[0]
            if not self.measuring:
                self._begin(now)
        elif args:
            raise Nack(f"SCD30 command 0x{code:04x} takes no argument")
        elif code == 0x0104:
            self.measuring, self._ready = False, False
        elif code == 0x0202:
            ready = self._ready and not self.faults.take("not_ready")
            self._reply = encode_reply([int(ready)])
        elif code == 0x0300:
            # The host must check data-ready first; a read without new data repeats
            # the old buffer, and only clears the flag once the bytes went out.
            if self._buffer is not None:
                self._reply = encode_reply(self._buffer)
                self._after_read = self._consume
        elif code == 0xD100:
            self._reply = encode_reply([self.firmware])
        elif code == 0xD304:
            self._busy_until = now + self._boot_s
            self._ready, self._buffer = False, None
            if self.measuring:  # the mode is resumed from non-volatile memory
                self._next_sample = self._busy_until + self._interval()
        else:
            raise Nack(f"SCD30 unknown command 0x{code:04x}")

    def _consume(self) -> None:
        self._ready = False

    def _begin(self, now: float) -> None:
        self.measuring = True
        self._next_sample = now + self._interval()

    def _interval(self) -> float:
        return self._sample_interval_s or float(self.interval_s)

    def _tick(self) -> float:
        """Take the samples that fell due since the last transaction."""
        now = self._clock()
        if self.measuring and now >= self._next_sample and now >= self._busy_until:
            interval = self._interval()
            self._next_sample += interval * (int((now - self._next_sample) // interval) + 1)
            self._sample()
        return now

    def _sample(self) -> None:
        co2 = self._co2.advance(self._rng) + self.co2_correction
        temperature = (self._temperature.advance(self._rng)
                       - self.temperature_offset_ticks * 0.01)
        humidity = self._humidity.advance(self._rng)
        self._buffer = float_words(max(0.0, co2), temperature, humidity)
        self._ready = True
        self.samples += 1


@register("scd30")
def make_scd30(**kwargs: object) -> Scd30Device:
    """Factory for simulated mode and tests; every keyword is optional."""
    return Scd30Device(**kwargs)  # type: ignore[arg-type]
