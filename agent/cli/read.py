"""``lokaalmeten read``: one-shot readings from a configured sensor (wiring checks)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from agent.bus.provider import HardwareBuses
from agent.cli._common import (
    EXIT_OK,
    add_config_arguments,
    load_plan,
    setup_logging,
    simulated_buses,
)
from agent.clock import SYSTEM
from agent.errors import ConfigError, DataNotReady
from agent.plan import sensor_opener


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    text = "Take one-shot readings from a configured sensor."
    p = sub.add_parser("read", help=text, description=text)
    add_config_arguments(p)
    p.add_argument("--sensor", required=True, help="sensor id from the config")
    p.add_argument("--count", type=int, default=1, help="readings to take (default 1)")
    p.add_argument("--interval", type=float, help="seconds between readings")
    p.add_argument("--json", action="store_true", help="JSON lines output")
    p.add_argument("--simulate", action="store_true", help="read the emulated sensor instead")
    p.set_defaults(func=cmd_read)


def cmd_read(args: argparse.Namespace) -> int:
    the_plan = load_plan(args.config)
    setup_logging(args.log_level or "WARNING")
    sensor = next((s for s in the_plan.sensors if s.sensor_id == args.sensor), None)
    if sensor is None:
        known = ", ".join(s.sensor_id for s in the_plan.sensors) or "none"
        raise ConfigError(str(args.config), [("sensors", f"no enabled sensor {args.sensor!r} "
                                              f"(configured: {known})")])
    buses = (simulated_buses(the_plan.config, Path(tempfile.mkdtemp()))
             if args.simulate else HardwareBuses())
    driver, close = sensor_opener(the_plan, buses)(sensor)
    units = {q.name: q.unit for q in sensor.profile.quantities}
    interval = args.interval or sensor.profile.min_interval_s
    try:
        driver.start()
        done = 0
        while done < args.count:
            SYSTEM.sleep(interval)
            try:
                readings = driver.read()
            except DataNotReady:
                continue
            done += 1
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(SYSTEM.wall_ms() / 1000))
            for r in readings:
                if args.json:
                    print(json.dumps({"time": stamp, "sensor": sensor.sensor_id,
                                      "quantity": r.quantity, "value": r.value,
                                      "unit": units[r.quantity], "flags": sorted(r.flags)}))
                else:
                    print(f"{stamp} {sensor.sensor_id} {r.quantity} = {r.value:g} "
                          f"{units[r.quantity]}")
            sys.stdout.flush()
    finally:
        try:
            driver.stop()
        finally:
            close()
    return EXIT_OK
