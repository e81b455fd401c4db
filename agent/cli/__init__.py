"""The ``lokaalmeten`` command line: one module per sub-command.

Exit codes: 0 success, 1 runtime failure, 2 invalid configuration or usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agent import __version__
from agent.cli import (
    apply_setup,
    calibrate,
    check,
    count,
    init,
    noise,
    read,
    run,
    scan,
    sensorthings,
    status,
)
from agent.cli._common import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from agent.errors import AgentError, ConfigError
from agent.redact import redact_text

COMMANDS = (run, check, status, init, read, scan, noise, calibrate, count, apply_setup,
            sensorthings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lokaalmeten", description="Lokaal Meten edge agent: sensors in, MQTT out.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:  # errors may quote a camera URL: never with its password
        print(f"configuration error:\n{redact_text(str(exc))}", file=sys.stderr)
        return EXIT_CONFIG
    except AgentError as exc:
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK
