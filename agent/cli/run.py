"""``lokaalmeten run`` and ``lokaalmeten simulate``: the daemon, on hardware or emulators.

Both read the configuration file again on SIGHUP (``systemctl reload``): see
:meth:`agent.app.Agent.reload`. Both give up the daemon's camera access before
anything else runs (:mod:`agent.vision.camera_access`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from agent.app import Agent
from agent.bus.provider import HardwareBuses
from agent.cli._common import (
    DEFAULT_SIMULATED_CONFIG,
    SimulatedBox,
    add_config_arguments,
    load_plan,
    setup_logging,
)
from agent.config import AgentConfig, load_config
from agent.plan import Plan, plan
from agent.vision.camera_access import withdraw_camera_access
from agent.vision.zygote import Zygote


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    text = "Run the agent on real hardware (what the systemd unit starts)."
    p = sub.add_parser("run", help=text, description=text)
    add_config_arguments(p)
    p.set_defaults(func=cmd_run)
    text = "Run the agent against built-in emulated sensors (no hardware needed)."
    p = sub.add_parser("simulate", help=text, description=text)
    add_config_arguments(p, DEFAULT_SIMULATED_CONFIG)
    p.add_argument("--broker", metavar="HOST:PORT", help="override the config's broker")
    p.add_argument("--state-dir", metavar="DIR", help="where to keep the outbox")
    p.set_defaults(func=cmd_simulate)


def cmd_run(args: argparse.Namespace) -> int:
    the_plan = load_plan(args.config)
    setup_logging(args.log_level or the_plan.config.log_level)
    withdraw_camera_access(Zygote.shared(), cameras=counting(the_plan.config))
    agent = Agent(the_plan, HardwareBuses(), loader=lambda: load_plan(args.config))
    agent.install_signal_handlers()
    return agent.run()


def counting(config: AgentConfig) -> bool:
    """Whether any camera is enabled (the daemon then needs the counters' zygote)."""
    return any(camera.enabled for camera in config.cameras.values())


def simulated_config(args: argparse.Namespace) -> AgentConfig:
    """The config file with the command line's broker and state directory applied."""
    config = load_config(args.config)
    updates: dict[str, object] = {}
    if args.broker:
        host, _, port = args.broker.rpartition(":")
        updates["mqtt"] = config.mqtt.model_copy(update={"host": host or "localhost",
                                                         "port": int(port)})
    if args.state_dir:
        updates["storage"] = config.storage.model_copy(
            update={"path": Path(args.state_dir) / "outbox.sqlite"})
    return config.model_copy(update=updates)


def cmd_simulate(args: argparse.Namespace) -> int:
    box = SimulatedBox(Path(tempfile.mkdtemp(prefix="lokaalmeten-sim-")))

    def load() -> Plan:  # a sensor added by a reload gets its emulator too
        the_plan = plan(simulated_config(args), str(args.config))
        box.add(the_plan.config)
        return the_plan

    the_plan = plan(simulated_config(args), str(args.config))
    config = the_plan.config
    setup_logging(args.log_level or config.log_level)
    # Before the emulators start their threads: capabilities belong to threads.
    withdraw_camera_access(Zygote.shared(), cameras=counting(config))
    box.add(config)
    mqtt = config.mqtt
    topic = f"{mqtt.topic_prefix}/{config.device_id}/#"
    page = f"Status page: {config.status.local_url()}/\n" if config.status.enabled else ""
    print(f"Simulating {len(the_plan.sensors)} sensors; watch with:\n"
          f"  mosquitto_sub -h {mqtt.host} -p {mqtt.port} -t '{topic}' -v\n"
          f"{page}Ctrl-C stops.", file=sys.stderr, flush=True)
    agent = Agent(the_plan, box.buses, loader=load)
    agent.install_signal_handlers()
    return agent.run()
