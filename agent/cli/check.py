"""``lokaalmeten check-config``: validate without opening any bus.

Administrators (group ``lokaalmeten-admin``) run it without sudo: they read the config,
not the agent's secrets, so a secret only its owner may read is reported, not failed.
"""

from __future__ import annotations

import argparse
import sys

from agent.cli._common import EXIT_OK, add_config_arguments, load_plan
from agent.plan import community_node
from agent.redact import redact_text


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    text = "Validate a configuration without opening any bus."
    p = sub.add_parser("check-config", help=text, description=text)
    add_config_arguments(p)
    p.set_defaults(func=cmd_check_config)


def cmd_check_config(args: argparse.Namespace) -> int:
    the_plan = load_plan(args.config, owner_only_secrets=True)
    for key, reason in the_plan.config.warnings():
        print(f"warning: {args.config}: {key}: {reason}", file=sys.stderr)
    names = ", ".join(f"{s.sensor_id} ({s.profile.model})" for s in the_plan.sensors) or "none"
    cameras = ", ".join(cid for cid, c in the_plan.config.cameras.items() if c.enabled)
    print(f"{args.config}: OK — device {the_plan.config.device_id}, sensors: {names}"
          + (f"; cameras: {cameras}" if cameras else ""))
    sc = the_plan.config.sinks.active_sensor_community()
    if sc is not None:  # what the user registers on devices.sensor.community
        pins = {s.sensor_id: s.profile.sensor_community_pin for s in the_plan.sensors}
        print(f"Sensor.Community node {community_node(the_plan.config, str(args.config))}: "
              + ", ".join(f"{sensor_id} on pin {pins[sensor_id]}" for sensor_id in sc.sensors))
    influx = the_plan.config.sinks.active_influxdb()
    if influx is not None:  # where the points go, without the credentials
        target = f"database {influx.database}" if influx.api == "v1" else \
            f"org {influx.org}, bucket {influx.bucket}"
        print(f"InfluxDB {influx.api} at {redact_text(str(influx.url))}: {target}")
    return EXIT_OK
