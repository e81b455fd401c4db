"""Which serial ports to scan, and under which name to report each.

A USB adapter appears as ``/dev/ttyUSB0`` *and* as a ``/dev/serial/by-id/...``
link; the Raspberry Pi's header UART as ``/dev/ttyAMA0`` or ``/dev/ttyS0`` *and*
as ``/dev/serial0``. Names that resolve to the same device are scanned once and
reported under the stable name: the by-id link first (it survives replugging
into another USB socket and boots that number adapters differently), then
``/dev/serialN``, then whatever name came first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from agent.scan.serial import PortChoice

BY_ID_DIR = Path("/dev/serial/by-id")
PI_UART_ALIASES = (Path("/dev/serial0"), Path("/dev/serial1"))


def _rank(name: str) -> int:
    """0 for a by-id link, 1 for a /dev/serialN alias, 2 for anything else."""
    if "/serial/by-id/" in name:
        return 0
    if re.fullmatch(r"/dev/serial\d", name):
        return 1
    return 2


def merge_ports(names: Iterable[str], resolve: Callable[[str], str]) -> list[PortChoice]:
    """One :class:`PortChoice` per device, in first-seen order, under its stablest name."""
    groups: dict[str, list[str]] = {}
    for name in names:
        members = groups.setdefault(resolve(name), [])
        if name not in members:
            members.append(name)
    choices = []
    for members in groups.values():
        best = min(members, key=lambda n: (_rank(n), members.index(n)))
        choices.append(PortChoice(best, tuple(n for n in members if n != best)))
    return choices


def discover_ports(configured: Sequence[str], extra: Sequence[str]) -> list[PortChoice]:
    """Configured ports, ``--port`` ones, every by-id link and the Pi UART aliases present."""
    names = [*configured, *extra]
    if BY_ID_DIR.is_dir():
        names += [str(path) for path in sorted(BY_ID_DIR.iterdir())]
    names += [str(path) for path in PI_UART_ALIASES if path.exists()]
    return merge_ports(names, os.path.realpath)
