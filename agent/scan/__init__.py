"""``lokaalmeten scan``: which supported sensors answer on the box's buses and ports.

The scan is driven by the firmware profiles: every I2C address a profile uses is
probed on every bus to scan, and every serial port is listened to (then, if
silent, asked) at every bit rate a serial profile uses. It only ever *reads*:
no setting is written, no measurement started or stopped, nothing reset or
woken; :mod:`agent.scan.i2c` and :mod:`agent.scan.serial` list every byte
sequence sent and why it is harmless.

It takes a :class:`~agent.bus.provider.BusProvider`, so the same code scans real
hardware (``HardwareBuses``) and the simulated box (``SimulatedBuses``).

Pieces: :mod:`~agent.scan.findings` (result values), :mod:`~agent.scan.i2c` and
:mod:`~agent.scan.serial` (the probes), :mod:`~agent.scan.ports` (which ports,
under which name) and :mod:`~agent.scan.report` (table, snippet, JSON).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from agent.bus.i2c import I2CDevice
from agent.bus.provider import BusProvider
from agent.config.profiles import Profile, all_profiles
from agent.errors import BusError
from agent.scan import i2c, serial
from agent.scan.findings import Finding, Identity, Problem, ScanReport, State
from agent.scan.serial import PortChoice, SerialTiming

__all__ = ["Finding", "Identity", "PortChoice", "Problem", "ScanReport", "SerialTiming",
           "State", "i2c_targets", "run_scan"]

MAX_PARALLEL_PORTS = 8


def i2c_targets(profiles: Iterable[Profile]) -> dict[int, list[str]]:
    """Address -> the I2C profile models that use it (default or strap address)."""
    targets: dict[int, list[str]] = {}
    for profile in profiles:
        if profile.bus != "i2c" or profile.address is None:
            continue
        for address in (profile.address, *profile.alt_addresses):
            models = targets.setdefault(address, [])
            if profile.model not in models:
                models.append(profile.model)
    return targets


def run_scan(buses: BusProvider, *, i2c_buses: Sequence[int | str],
             ports: Sequence[PortChoice], profiles: Mapping[str, Profile] | None = None,
             timing: SerialTiming | None = None,
             progress: Callable[[str], None] | None = None) -> ScanReport:
    """Scan the I2C buses one after the other and the serial ports in parallel."""
    profiles = profiles if profiles is not None else all_profiles()
    timing = timing or SerialTiming()
    say = progress or (lambda _message: None)
    findings: list[Finding] = []
    problems: list[Problem] = []
    targets = i2c_targets(profiles.values())
    for bus in i2c_buses:
        say(f"I2C bus {bus}: probing {len(targets)} addresses")

        def open_device(address: int, bus: int | str = bus) -> I2CDevice:
            return buses.i2c(bus, address)

        try:
            findings += i2c.scan_bus(open_device, bus, targets)
        except BusError as exc:
            problems.append(Problem(f"i2c-{bus}", str(exc)))
    plans = serial.plans_for(profiles.values())
    silent: list[str] = []
    if not ports:
        say("serial: no ports to scan (none configured or found; name one with --port)")
    elif plans:
        rates = ", ".join(str(plan.baudrate) for plan in plans)
        say(f"serial: listening on {len(ports)} port(s) at {rates} bit/s, then asking")
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_PORTS, len(ports))) as pool:
            outcomes = list(pool.map(
                lambda port: serial.scan_port(buses.serial, port, plans, timing), ports))
        for port, outcome in zip(ports, outcomes, strict=True):
            if outcome.finding is not None:
                findings.append(outcome.finding)
            if outcome.problem is not None:
                problems.append(outcome.problem)
            if outcome.silent:
                silent.append(port.name)
    return ScanReport(tuple(findings), tuple(problems), tuple(silent), tuple(i2c_buses),
                      tuple(port.name for port in ports))
