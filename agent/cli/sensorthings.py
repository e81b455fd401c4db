"""``lokaalmeten sensorthings provision``: put the box on the SensorThings server.

Creates what ``[sinks.sensorthings]`` needs there (Thing, Location, Sensors,
ObservedProperties, Datastreams), updates what changed, and prints one line per
entity. Idempotent: run it again and everything is "unchanged". The running sink does
the same before its first Observation, so this is for setting up and checking, not a
step the agent depends on. Exit codes: 0 done, 1 the server failed or refused, 2 bad
configuration or no ``[sinks.sensorthings]``.
"""

from __future__ import annotations

import argparse
import http.client
import urllib.error

from agent import __version__
from agent.cli._common import EXIT_OK, add_config_arguments, load_plan, setup_logging
from agent.errors import ConfigError, PublishError
from agent.health.system import cpu_serial
from agent.publish.sensorthings import catalog
from agent.publish.sensorthings_client import Server, provision


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    text = "OGC SensorThings: set the box up on the server of [sinks.sensorthings]."
    p = sub.add_parser("sensorthings", help=text, description=text)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = actions.add_parser("provision", help="create or update the box's Thing, Location, "
                           "Sensors, ObservedProperties and Datastreams (idempotent)")
    add_config_arguments(q)
    q.set_defaults(func=cmd_provision)


def cmd_provision(args: argparse.Namespace) -> int:
    the_plan = load_plan(args.config)
    setup_logging(args.log_level or "WARNING")
    box = the_plan.config
    config = box.sinks.active_sensorthings()
    if config is None:
        raise ConfigError(str(args.config), [("sinks.sensorthings", "not configured (or "
                                              "enabled = false): nothing to provision")])
    wanted = catalog(config, box.device_id, the_plan.sensors, box.location,
                     agent_version=__version__, box_serial=cpu_serial())
    server = Server.for_config(config, f"lokaalmeten/{__version__}")
    try:
        done = provision(server, wanted)
    except urllib.error.HTTPError as exc:
        with exc:
            reason = " ".join(exc.read(2048).decode("utf-8", "replace").split())[:300]
        raise PublishError(f"{server.base}: HTTP {exc.code} {exc.reason}: {reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise PublishError(f"{server.base}: {getattr(exc, 'reason', exc)}") from None
    for entity, action in done.actions:
        print(f"{action:<9} {entity.collection}({done.ids[entity.key]!r}) {entity.key}")
    return EXIT_OK
