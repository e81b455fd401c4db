"""``lokaalmeten scan``: which supported sensors answer, and a config snippet for them.

Read-only by design (see :mod:`agent.scan`): it is safe to run on a box whose
sensors are configured, but stop the agent first, since the agent holds the
serial ports and keeps its sensors measuring (an SCD4x then only says
"present (measuring)").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from agent.bus.provider import BusProvider, HardwareBuses
from agent.cli._common import (
    DEFAULT_SIMULATED_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    setup_logging,
    simulated_buses,
)
from agent.config import DEFAULT_CONFIG_PATH, AgentConfig, load_config
from agent.config.profiles import all_profiles
from agent.errors import ConfigError
from agent.scan import ScanReport, run_scan
from agent.scan.ports import discover_ports, merge_ports
from agent.scan.report import render_snippet, render_table, to_json

DEFAULT_BUS = 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    text = "Find the supported sensors on the I2C buses and serial ports (read-only)."
    p = sub.add_parser(
        "scan", help=text, description=text + " Prints a table and a config snippet; "
        "exit code 1 when nothing answered. Stop the agent first: it holds the ports.")
    p.add_argument("--config", type=Path,
                   help=f"also scan this config's buses and ports (default {DEFAULT_CONFIG_PATH} "
                   "if it exists; with --simulate the bundled simulated box)")
    p.add_argument("--bus", action="append", default=[], metavar="N",
                   help="I2C bus number or /dev/i2c-N to scan (repeatable; default: the "
                   f"config's buses, else {DEFAULT_BUS})")
    p.add_argument("--port", action="append", default=[], metavar="P",
                   help="serial port to scan as well (repeatable); /dev/serial/by-id/* and "
                   "/dev/serial0 are always scanned")
    p.add_argument("--simulate", action="store_true",
                   help="scan the emulated sensors of the config instead of hardware")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="log level on stderr (default WARNING)")
    p.set_defaults(func=cmd_scan)


def cmd_scan(args: argparse.Namespace) -> int:
    setup_logging(args.log_level or "WARNING")
    config = _load_config(args.config, args.simulate)
    report = scan_box(config, args.bus, args.port, simulate=args.simulate)
    snippet = render_snippet(report, all_profiles())
    if args.json:
        print(json.dumps(to_json(report, snippet), indent=2))
    else:
        print(render_table(report))
        print(snippet, end="")
    return EXIT_OK if report.findings else EXIT_FAILURE


def scan_box(config: AgentConfig | None, bus_args: list[str], port_args: list[str], *,
             simulate: bool) -> ScanReport:
    """Scan the buses and ports of ``config`` and the command line (also for ``init``).

    With ``simulate``, ``config`` is the simulated box whose emulators are scanned.
    """
    sensors = config.resolved_sensors() if config is not None else []
    buses_wanted = _unique([*(s.bus for s in sensors if s.profile.bus == "i2c"),
                            *(_bus_arg(b) for b in bus_args)])
    configured_ports = [s.config.port for s in sensors if s.config.port is not None]
    buses: BusProvider
    if simulate:
        if config is None:
            raise ConfigError(str(DEFAULT_SIMULATED_CONFIG), [("", "simulated config missing")])
        buses = simulated_buses(config, Path(tempfile.mkdtemp(prefix="lokaalmeten-scan-")))
        ports = merge_ports([*configured_ports, *port_args], lambda name: name)
    else:
        buses = HardwareBuses()
        buses_wanted = buses_wanted or [DEFAULT_BUS]
        ports = discover_ports(configured_ports, port_args)
    try:
        return run_scan(buses, i2c_buses=buses_wanted, ports=ports,
                        progress=lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        close = getattr(buses, "close", None)
        if callable(close):
            close()


def _load_config(path: Path | None, simulate: bool) -> AgentConfig | None:
    """The named config; else the default one if present (a fresh box has none yet)."""
    if path is not None:
        return load_config(path)
    default = DEFAULT_SIMULATED_CONFIG if simulate else DEFAULT_CONFIG_PATH
    return load_config(default) if default.exists() else None


def _bus_arg(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _unique(items: list[int | str]) -> list[int | str]:
    return list(dict.fromkeys(items))
