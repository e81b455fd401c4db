"""The daemon gives up its access to cameras; only the counter processes keep it.

Why: frames may exist only inside a counter process, confined by its own
sandbox. A daemon that can open ``/dev/video*`` could read frames itself after
a bug or a compromise; the record format and the counter's sandbox would not
stand in its way. So the daemon (``lokaalmeten run`` / ``simulate``), once, at
start and before it has any other thread:

1. starts the counters' zygote (``agent.vision.zygote``) when a camera is
   configured, while it still holds the camera groups, for the counters;
2. drops from its own supplementary groups ``video`` and every group owning a
   camera node (``/dev/video*``, ``/dev/media*``, ``/dev/v4l-subdev*``), which
   needs ``CAP_SETGID`` (the systemd unit grants exactly that one capability);
3. drops every capability (``CAP_SETGID`` too) and sets no-new-privileges, so
   it can never take a group back (``agent.vision.privileges``);
4. checks what is left: a camera node it could still open (a camera group kept,
   an ACL, root) is named in one WARNING, like the counter sandbox's missing
   layers. On a laptop (no ``CAP_SETGID``) or as root that is the expected
   outcome, and it does not stop the daemon, not even with
   ``LOKAALMETEN_REQUIRE_SANDBOX=1``: that setting is about the counter's own
   confinement, which holds there; the daemon's loss of camera access is a
   property of the systemd unit, and ``tests/privacy/test_camera_access.py``
   proves it by running the daemon with the unit's credentials.
"""

from __future__ import annotations

import logging
import os

from agent.vision.privileges import (
    CAP_SETGID,
    Credentials,
    camera_gids,
    camera_nodes,
    drop_capabilities,
    group_names,
    set_groups,
    thread_count,
)
from agent.vision.zygote import Zygote

log = logging.getLogger(__name__)

UNIT_HINT = "the systemd unit (systemd/lokaalmeten-agent.service) withdraws it"


def withdraw_camera_access(zygote: Zygote, *, cameras: bool) -> None:
    """Start the zygote (when ``cameras``), then give up camera groups and capabilities.

    Call once, before the daemon starts any thread. Logs one INFO line, or one
    WARNING naming what is not enforced.
    """
    if cameras:
        try:
            zygote.start()
        except OSError as exc:  # the supervisors try again; those counters lack the group
            log.error("cannot start the counters' zygote now: %s", exc)
    not_enforced = []
    held = Credentials.of()
    camera = held.groups & camera_gids()
    if camera and not held.holds(CAP_SETGID):
        not_enforced.append(f"camera groups {group_names(camera)} kept: no CAP_SETGID to "
                            "drop them")
    elif camera:
        set_groups(held.groups - camera)
        zygote.after_withdrawal = True
    if held.gid in camera_gids():
        not_enforced.append(f"its primary group {group_names({held.gid})} owns a camera node")
    threads = thread_count()
    if threads > 1 and held.capable:  # capabilities belong to threads: the others keep theirs
        not_enforced.append(f"capabilities dropped in 1 of {threads} threads (the others "
                            "started earlier; the unit sets OPENBLAS_NUM_THREADS=1 so that "
                            "importing numpy starts none)")
    try:
        drop_capabilities()
    except OSError as exc:
        not_enforced.append(f"capabilities not dropped: {exc}")
    if os.geteuid() == 0:
        not_enforced.append("runs as root, which owns the camera nodes")
    reachable = [node for node in camera_nodes() if os.access(node, os.R_OK | os.W_OK)]
    if reachable:
        not_enforced.append(f"can still open {', '.join(reachable)}")
    if not_enforced:
        log.warning("the daemon keeps camera access (not enforced: %s); %s",
                    "; ".join(not_enforced), UNIT_HINT)
    else:
        log.info("camera access withdrawn from the daemon: groups %s dropped, no "
                 "capabilities; only counter processes open cameras", group_names(camera))

