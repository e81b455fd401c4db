"""systemd readiness and watchdog, spoken straight to $NOTIFY_SOCKET.

The protocol is one datagram of ``KEY=VALUE`` lines on a Unix socket; it
needs no library. Outside systemd (no $NOTIFY_SOCKET) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send e.g. ``READY=1``, ``WATCHDOG=1``, ``STOPPING=1``; True when delivered."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("sd_notify %r failed: %s", state, exc)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half the configured WatchdogSec, when the watchdog is meant for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1e6 / 2
    except ValueError:
        return None
