"""The agent's one exception tree.

Errors carry their evidence (the raw frame, expected and received checksums)
so a log line or a health counter can say exactly what went wrong.

    AgentError
    ├── ConfigError
    ├── BusError
    │   ├── CrcError
    │   ├── FrameError
    │   ├── BusTimeout
    │   └── NackError
    ├── SensorError
    │   └── DataNotReady
    ├── StorageError
    └── PublishError
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(AgentError):
    """A configuration file is unreadable or invalid.

    ``problems`` lists ``(key path, reason)`` pairs so all mistakes in a file
    are reported at once rather than one per run.
    """

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {key}: {reason}" if key else f"{source}: {reason}"
                 for key, reason in problems]
        super().__init__("\n".join(lines))


class BusError(AgentError):
    """Talking to a device over I2C or serial failed."""

    def __init__(self, message: str, *, raw: bytes = b"") -> None:
        self.raw = raw
        suffix = f" (raw {raw.hex(' ')})" if raw else ""
        super().__init__(message + suffix)


class CrcError(BusError):
    """A checksum or CRC did not match; the frame is discarded."""

    def __init__(self, message: str, *, expected: int, received: int, raw: bytes = b"") -> None:
        self.expected = expected
        self.received = received
        super().__init__(f"{message}: expected 0x{expected:02x}, received 0x{received:02x}",
                         raw=raw)


class FrameError(BusError):
    """A frame was truncated, too long, or had a wrong header, tail or length."""


class BusTimeout(BusError):
    """The device did not answer in time (serial silence, I2C errno 110)."""


class NackError(BusError):
    """The device did not acknowledge its address or a byte (I2C errno 121)."""


class SensorError(AgentError):
    """The device answered correctly but reported a fault or an impossible state."""


class DataNotReady(SensorError):
    """No new measurement is available yet; skip this slot rather than repeat old data."""


class StorageError(AgentError):
    """The outbox database could not be opened or written."""


class PublishError(AgentError):
    """A message could not be handed to the broker."""
