"""Helpers shared by the sub-commands: loading plans, logging, simulated buses."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.app import Plan, plan
from agent.bus.provider import BusProvider
from agent.config import DEFAULT_CONFIG_PATH, AgentConfig, load_config
from agent.logformat import configure

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


def load_plan(path: Path) -> Plan:
    return plan(load_config(path), str(path))


def simulated_buses(config: AgentConfig, state_dir: Path) -> BusProvider:
    """Emulators for every configured sensor (imported only when simulating)."""
    from agent.emulators.simulation import SimulatedBuses  # noqa: PLC0415 - simulation only

    buses = SimulatedBuses(state_dir)
    for sensor in config.resolved_sensors():
        buses.add(sensor.profile, port=sensor.config.port, bus=sensor.bus,
                  address=sensor.address, device=sensor.config.device)
    return buses
