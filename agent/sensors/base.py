"""What every sensor driver offers the sampler.

A driver is wire code only: it is handed an already-open bus, speaks the
device's protocol, and returns :class:`~agent.models.Reading` values. Units,
valid ranges, clocks and aggregation belong to the profile and the sampler.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from agent.errors import CrcError, FrameError
from agent.models import Reading

_T = TypeVar("_T")
_E = TypeVar("_E", bound=Exception)


class BusKind(StrEnum):
    """How a sensor is attached."""

    I2C = "i2c"
    SERIAL = "serial"
    AUDIO = "audio"
    """A sound capture device (ALSA via PortAudio) or a WAV file replayed in real time."""


@runtime_checkable
class SensorDriver(Protocol):
    """The life cycle the sampler drives.

    ``read`` raises :class:`~agent.errors.DataNotReady` when the device has no
    new data (the slot is skipped, not failed) and any other
    :class:`~agent.errors.AgentError` on failure. ``frames_rejected`` counts
    frames dropped for a bad checksum, length or header since start.
    """

    model: ClassVar[str]
    quantities: ClassVar[tuple[str, ...]]
    frames_rejected: int
    bytes_discarded: int

    def __init__(self, bus: Any, options: Any) -> None:
        """Every driver is built the same way: on an open bus, with its typed options."""

    def start(self) -> None:
        """Bring the device into its measuring state (probe, configure, start)."""

    def read(self) -> list[Reading]:
        """Return the newest values; never the same data twice as new."""

    def reset(self) -> None:
        """Soft reset / re-initialise after consecutive failures."""

    def stop(self) -> None:
        """Stop measuring (and sleep where the device can) before close or shutdown."""


@runtime_checkable
class DutyCycled(Protocol):
    """Drivers whose device should sleep between readings to save its laser or fan."""

    def sleep(self) -> None:
        """Put the device to sleep until :meth:`wake`."""

    def wake(self) -> None:
        """Wake the device; the sampler waits the profile's ``wake_lead_s`` before reading."""


@runtime_checkable
class Identifiable(Protocol):
    """Drivers that can report serial number / firmware without changing settings."""

    def identify(self) -> dict[str, str]:
        """Return facts such as ``{"serial": ..., "firmware": ...}``."""


class RejectCounter:
    """The ``frames_rejected`` counter every driver keeps, and the one way to bump it.

    A frame is rejected when its checksum, length or header is wrong: the parser
    raises :class:`~agent.errors.CrcError` or :class:`~agent.errors.FrameError`,
    the counter goes up and the error still reaches the sampler, which retries.
    Drivers inherit this rather than repeating the try/except around each parse.
    """

    frames_rejected: int = 0
    bytes_discarded: int = 0
    """Line noise a serial driver skipped while it resynchronised on a frame header:
    a line that is noisy from boot shows here even while every frame gets through."""

    @contextmanager
    def rejecting(self) -> Iterator[None]:
        """Count a CrcError/FrameError raised inside the block, then let it propagate."""
        try:
            yield
        except (CrcError, FrameError):
            self.frames_rejected += 1
            raise

    def checked(self, parse: Callable[..., _T], data: bytes, *args: object) -> _T:
        """``parse(data, *args)``, counting the frame as rejected when it is malformed."""
        with self.rejecting():
            return parse(data, *args)

    def rejected(self, error: _E) -> _E:
        """Count a frame the driver itself finds malformed; returns ``error`` for ``raise``."""
        self.frames_rejected += 1
        return error
