"""The ``lokaalmeten`` command line.

Exit codes: 0 success, 1 runtime failure, 2 invalid configuration or usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from agent import __version__
from agent.app import Agent, Plan, plan, sensor_opener
from agent.bus.provider import BusProvider, HardwareBuses
from agent.config import DEFAULT_CONFIG_PATH, AgentConfig, load_config
from agent.errors import AgentError, ConfigError, DataNotReady

log = logging.getLogger("agent")

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2


def _package_file(*parts: str) -> Path:
    """A shipped file: from the source tree, or as force-included into the wheel."""
    package = Path(__file__).resolve().parent
    for base in (package.parent, package):
        candidate = base.joinpath(*parts)
        if candidate.exists():
            return candidate
    return package.parent.joinpath(*parts)


DEFAULT_SIMULATED_CONFIG = _package_file("examples", "simulated.toml")


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _load_plan(path: Path) -> Plan:
    return plan(load_config(path), str(path))


def _simulated_buses(config: AgentConfig, state_dir: Path) -> BusProvider:
    from agent.emulators.simulation import SimulatedBuses  # noqa: PLC0415 - simulation only

    buses = SimulatedBuses(state_dir)
    for sensor in config.resolved_sensors():
        buses.add(sensor.profile, port=sensor.config.port, bus=sensor.bus,
                  address=sensor.address)
    return buses


def cmd_check_config(args: argparse.Namespace) -> int:
    the_plan = _load_plan(args.config)
    names = ", ".join(f"{s.sensor_id} ({s.profile.model})" for s in the_plan.sensors) or "none"
    print(f"{args.config}: OK — device {the_plan.config.device_id}, sensors: {names}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    the_plan = _load_plan(args.config)
    _setup_logging(args.log_level or the_plan.config.log_level)
    agent = Agent(the_plan, HardwareBuses())
    agent.install_signal_handlers()
    return agent.run()


def cmd_simulate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    updates: dict[str, object] = {}
    if args.broker:
        host, _, port = args.broker.rpartition(":")
        updates["mqtt"] = config.mqtt.model_copy(update={"host": host or "localhost",
                                                         "port": int(port)})
    if args.state_dir:
        updates["storage"] = config.storage.model_copy(
            update={"path": Path(args.state_dir) / "outbox.sqlite"})
    config = config.model_copy(update=updates)
    the_plan = plan(config, str(args.config))
    _setup_logging(args.log_level or config.log_level)
    link_dir = Path(tempfile.mkdtemp(prefix="lokaalmeten-sim-"))
    buses = _simulated_buses(config, link_dir)
    mqtt = config.mqtt
    topic = f"{mqtt.topic_prefix}/{config.device_id}/#"
    print(f"Simulating {len(the_plan.sensors)} sensors; watch with:\n"
          f"  mosquitto_sub -h {mqtt.host} -p {mqtt.port} -t '{topic}' -v\n"
          f"Ctrl-C stops.", file=sys.stderr, flush=True)
    agent = Agent(the_plan, buses)
    agent.install_signal_handlers()
    return agent.run()


def cmd_read(args: argparse.Namespace) -> int:
    the_plan = _load_plan(args.config)
    _setup_logging(args.log_level or "WARNING")
    sensor = next((s for s in the_plan.sensors if s.sensor_id == args.sensor), None)
    if sensor is None:
        known = ", ".join(s.sensor_id for s in the_plan.sensors) or "none"
        raise ConfigError(str(args.config), [("sensors", f"no enabled sensor {args.sensor!r} "
                                              f"(configured: {known})")])
    buses = (_simulated_buses(the_plan.config, Path(tempfile.mkdtemp()))
             if args.simulate else HardwareBuses())
    driver, close = sensor_opener(the_plan, buses)(sensor)
    units = {q.name: q.unit for q in sensor.profile.quantities}
    interval = args.interval or sensor.profile.min_interval_s
    try:
        driver.start()
        done = 0
        while done < args.count:
            time.sleep(interval)
            try:
                readings = driver.read()
            except DataNotReady:
                continue
            done += 1
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lokaalmeten", description="Lokaal Meten edge agent: sensors in, MQTT out.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str, default_config: Path = DEFAULT_CONFIG_PATH
            ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", type=Path, default=default_config,
                       help=f"configuration file (default {default_config})")
        p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                       help="override the config's log level")
        return p

    add("run", "Run the agent on real hardware (what the systemd unit starts).") \
        .set_defaults(func=cmd_run)
    add("check-config", "Validate a configuration without opening any bus.") \
        .set_defaults(func=cmd_check_config)
    p = add("simulate", "Run the agent against built-in emulated sensors (no hardware needed).",
            DEFAULT_SIMULATED_CONFIG)
    p.add_argument("--broker", metavar="HOST:PORT", help="override the config's broker")
    p.add_argument("--state-dir", metavar="DIR", help="where to keep the outbox")
    p.set_defaults(func=cmd_simulate)
    p = add("read", "Take one-shot readings from a configured sensor.")
    p.add_argument("--sensor", required=True, help="sensor id from the config")
    p.add_argument("--count", type=int, default=1, help="readings to take (default 1)")
    p.add_argument("--interval", type=float, help="seconds between readings")
    p.add_argument("--json", action="store_true", help="JSON lines output")
    p.add_argument("--simulate", action="store_true", help="read the emulated sensor instead")
    p.set_defaults(func=cmd_read)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK
