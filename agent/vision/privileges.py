"""Supplementary groups and capabilities: the mechanics of withdrawing camera access.

Why: a non-root process can open a V4L2 camera (``/dev/video*``, ``root:video``
mode 0660 on Debian and Raspberry Pi OS) only through membership of the group
that owns the node. The daemon never needs a camera, so it drops those groups
(``agent.vision.camera_access``); the counter processes keep them through the
zygote (``agent.vision.zygote``), which narrows its own groups to exactly those.
This module only knows the kernel facts it relies on (setgroups(2), capset(2),
prctl(2), capabilities(7)):

* changing the supplementary groups needs ``CAP_SETGID`` in the effective set;
  the systemd unit grants it as an ambient capability, which survives execve
  into the daemon (and into whatever the daemon executes while it holds it);
* capabilities belong to a thread: capset(2) and ``PR_CAP_AMBIENT`` change the
  calling thread only, so they must be dropped before any other thread exists.
  glibc applies setgroups(3) to every thread of the process;
* clearing the permitted, effective and inheritable sets (capset) and the ambient
  set (``PR_CAP_AMBIENT_CLEAR_ALL``) leaves nothing to raise again. The bounding set
  cannot be lowered without ``CAP_SETPCAP`` (``PR_CAPBSET_DROP``), which the unit
  does not grant: with the other sets empty and no new privileges (no set-uid or
  file-capability program can add any), what is left in it can never be used.

Standard library and ctypes only: the zygote imports this module, and it must
stay small.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import grp
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CAP_SETGID = 6
VIDEO_GROUP = "video"
CAMERA_NODES = ("/dev/video*", "/dev/media*", "/dev/v4l-subdev*")
"""V4L2 capture, media-controller and sub-device nodes: a camera is reachable through any."""

PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 4, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def camera_gids() -> frozenset[int]:
    """The groups that give access to a camera here: ``video`` and every camera node's group."""
    gids = set()
    with contextlib.suppress(KeyError):  # no such group here
        gids.add(grp.getgrnam(VIDEO_GROUP).gr_gid)
    for pattern in CAMERA_NODES:
        for node in glob.glob(pattern):
            try:
                gids.add(os.stat(node).st_gid)
            except OSError:
                continue  # unplugged while we looked
    return frozenset(gids)


def group_names(gids: Iterable[int]) -> str:
    """``video (44), dialout (20)`` for a log line (a lookup: not in the zygote, see there)."""
    def name(gid: int) -> str:
        try:
            return f"{grp.getgrgid(gid).gr_name} ({gid})"
        except KeyError:
            return str(gid)

    return ", ".join(name(gid) for gid in sorted(gids)) or "(none)"


def camera_nodes() -> list[str]:
    """The camera device nodes present now."""
    return sorted(node for pattern in CAMERA_NODES for node in glob.glob(pattern))


@dataclass(frozen=True, slots=True)
class Credentials:
    """A process's groups and capability sets, as ``/proc/<pid>/status`` reports them."""

    gid: int
    groups: frozenset[int]
    effective: int
    permitted: int
    inheritable: int
    ambient: int
    bounding: int

    @classmethod
    def of(cls, pid: int | str = "self") -> Credentials:
        fields = dict(line.split(":", 1) for line in
                      Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        caps = {name: int(fields[name], 16) for name in
                ("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd")}
        return cls(int(fields["Gid"].split()[1]),
                   frozenset(int(g) for g in fields["Groups"].split()),
                   caps["CapEff"], caps["CapPrm"], caps["CapInh"], caps["CapAmb"],
                   caps["CapBnd"])

    def holds(self, capability: int) -> bool:
        return bool(self.effective >> capability & 1)

    @property
    def capable(self) -> bool:
        """Whether any capability is held or could be raised (bounding set aside)."""
        return bool(self.effective | self.permitted | self.inheritable | self.ambient)


def set_groups(gids: frozenset[int]) -> None:
    """Replace the supplementary groups (needs ``CAP_SETGID``; raises PermissionError)."""
    os.setgroups(sorted(gids))


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32))


def drop_capabilities() -> None:
    """Give up every capability of this thread for good, and forbid gaining new privileges.

    Call it before any other thread exists. Raises OSError when the kernel refuses.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    # no_new_privs: exec of a set-uid or file-capability program (newgrp, sg) adds nothing.
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAP_AMBIENT_CLEAR_ALL)")
    # Version 3 takes two 32-bit words per set (capabilities 0-31, 32-63): all zero.
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def forbid_tracing() -> None:
    """Not dumpable: no ptrace and no ``/proc/<pid>/mem`` by other processes of this user
    (nor by its children: they inherit it across fork). Raises OSError when refused."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE)")


def thread_count() -> int:
    """Threads of this process (capabilities dropped in one thread stay in the others)."""
    return len(os.listdir("/proc/self/task"))
