"""What a scan found: plain frozen values, shared by the probes, the report and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    """How far a device could be identified."""

    IDENTIFIED = "identified"
    """A supported model answered its read-only identity commands."""
    MEASURING = "measuring"
    """The device answered, but refuses identity reads while it measures (SCD4x);
    stopping it to ask would change its state, so the scan does not."""
    UNKNOWN = "unknown"
    """Something answered, but not as any supported model does."""


@dataclass(frozen=True)
class Identity:
    """A probe's verdict on one device, before it is placed on a bus or port."""

    model: str | None
    """The firmware-profile model name, or None when no supported model fits."""
    facts: dict[str, str] = field(default_factory=dict)
    """Serial number, firmware, device id...: what the protocol offers, as text."""
    state: State = State.IDENTIFIED
    alternatives: tuple[str, ...] = ()
    """Other models the same answer fits (SCD40 vs SCD41 while measuring, PMS family)."""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """One device that answered on an I2C address or a serial port."""

    kind: str
    """``"i2c"`` or ``"serial"``."""
    identity: Identity
    bus: int | str | None = None
    """I2C bus number or ``/dev/i2c-N`` path."""
    address: int | None = None
    port: str | None = None
    """The serial port name to configure (a /dev/serial/by-id/ name when there is one)."""
    port_aliases: tuple[str, ...] = ()
    """Other names of the same port (e.g. /dev/ttyUSB0 behind a by-id link)."""
    baudrate: int | None = None

    @property
    def model(self) -> str | None:
        return self.identity.model

    @property
    def where(self) -> str:
        """Bus or port, as a person reads it."""
        return f"i2c-{self.bus}" if self.kind == "i2c" else str(self.port)

    @property
    def at(self) -> str:
        """Address or bit rate, as a person reads it."""
        if self.kind == "i2c":
            return f"0x{self.address:02x}" if self.address is not None else "?"
        return f"{self.baudrate} bit/s" if self.baudrate else "?"


@dataclass(frozen=True)
class Problem:
    """A bus or port that could not be scanned at all (missing, no permission...)."""

    where: str
    message: str


@dataclass(frozen=True)
class ScanReport:
    """Everything one scan learned, in the order it was scanned."""

    findings: tuple[Finding, ...] = ()
    problems: tuple[Problem, ...] = ()
    silent_ports: tuple[str, ...] = ()
    """Ports that opened but where nothing answered at any profile's bit rate."""
    i2c_buses: tuple[int | str, ...] = ()
    ports: tuple[str, ...] = ()

    @property
    def sensors(self) -> tuple[Finding, ...]:
        """Findings with a supported model (the ones that go into a config snippet)."""
        return tuple(f for f in self.findings if f.model is not None)
