"""``lokaalmeten apply-setup``: write lines and zones proposed on the set-up page (root).

Under the systemd unit the agent cannot write its configuration, so the set-up page's
Save leaves a proposal in the state directory (``agent.config.camera_write``);
``lokaalmeten-setup.path`` runs this as root when it appears. Only the proposed camera's
lines and zones can change; the result is checked as ``check-config`` would before it
replaces the file, and the unit then reloads the agent.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.cli._common import EXIT_OK, add_config_arguments, load_plan
from agent.config.camera_write import PROPOSAL_FILE, apply_proposal


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    text = "Write the lines and zones proposed on the set-up page into the configuration."
    p = sub.add_parser("apply-setup", help=text, description=text)
    add_config_arguments(p)
    p.add_argument("--proposal", type=Path, help=f"default: {PROPOSAL_FILE} beside the "
                   "outbox ([storage] path)")
    p.set_defaults(func=cmd_apply_setup)


def cmd_apply_setup(args: argparse.Namespace) -> int:
    config: Path = args.config
    proposal: Path = args.proposal or \
        load_plan(config).config.storage.path.parent / PROPOSAL_FILE
    if apply_proposal(proposal, config, lambda path: load_plan(path, owner_only_secrets=True)):
        print(f"{config}: lines and zones from {proposal} written")
    else:
        print(f"{proposal}: no proposal")
    return EXIT_OK
