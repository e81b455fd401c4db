"""``lokaalmeten check-config``: validate without opening any bus."""

from __future__ import annotations

import argparse
import sys

from agent.cli._common import EXIT_OK, add_config_arguments, load_plan


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    text = "Validate a configuration without opening any bus."
    p = sub.add_parser("check-config", help=text, description=text)
    add_config_arguments(p)
    p.set_defaults(func=cmd_check_config)


def cmd_check_config(args: argparse.Namespace) -> int:
    the_plan = load_plan(args.config)
    for key, reason in the_plan.config.warnings():
        print(f"warning: {args.config}: {key}: {reason}", file=sys.stderr)
    names = ", ".join(f"{s.sensor_id} ({s.profile.model})" for s in the_plan.sensors) or "none"
    cameras = ", ".join(cid for cid, c in the_plan.config.cameras.items() if c.enabled)
    print(f"{args.config}: OK — device {the_plan.config.device_id}, sensors: {names}"
          + (f"; cameras: {cameras}" if cameras else ""))
    return EXIT_OK
