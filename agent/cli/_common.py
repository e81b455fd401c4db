"""Helpers shared by the sub-commands: loading plans, logging, simulated buses."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.bus.provider import BusProvider
from agent.config import DEFAULT_CONFIG_PATH, AgentConfig, load_config
from agent.logformat import configure
from agent.plan import Plan, plan

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2


def package_file(*parts: str) -> Path:
    """A shipped file: from the source tree, or as force-included into the wheel."""
    package = Path(__file__).resolve().parent.parent
    for base in (package.parent, package):
        candidate = base.joinpath(*parts)
        if candidate.exists():
            return candidate
    return package.parent.joinpath(*parts)


DEFAULT_SIMULATED_CONFIG = package_file("examples", "simulated.toml")


def add_config_arguments(parser: argparse.ArgumentParser,
                         default_config: Path = DEFAULT_CONFIG_PATH) -> None:
    parser.add_argument("--config", type=Path, default=default_config,
                        help=f"configuration file (default {default_config})")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="override the config's log level")


def setup_logging(level: str) -> None:
    """Log to stderr (the journal under systemd, with priorities), credentials redacted."""
    configure(level)


def load_plan(path: Path, *, owner_only_secrets: bool = False) -> Plan:
    return plan(load_config(path, owner_only_secrets=owner_only_secrets), str(path))


class SimulatedBox:
    """Emulators for the configured sensors (imported only when simulating).

    :meth:`add` can be called again with a reloaded config: only sensors at a new
    place (port, bus and address, or audio device) or of a new model get an emulator,
    so those already running keep their state.
    """

    def __init__(self, state_dir: Path) -> None:
        from agent.emulators.simulation import SimulatedBuses  # noqa: PLC0415 - simulation only

        self.buses = SimulatedBuses(state_dir)
        self._emulated: set[tuple[object, ...]] = set()

    def add(self, config: AgentConfig) -> None:
        for sensor in config.resolved_sensors():
            place = (sensor.profile.model, sensor.config.port, sensor.bus, sensor.address,
                     sensor.config.device)
            if place not in self._emulated:
                self.buses.add(sensor.profile, port=sensor.config.port, bus=sensor.bus,
                               address=sensor.address, device=sensor.config.device)
                self._emulated.add(place)


def simulated_buses(config: AgentConfig, state_dir: Path) -> BusProvider:
    """Emulators for every configured sensor."""
    box = SimulatedBox(state_dir)
    box.add(config)
    return box.buses
