"""Reading an ``strace -f`` log of the whole daemon: which process did what, and what it may not.

The daemon runs under ``strace -f`` from its first instruction, so everything
the counter process does is in the log, from the moment the zygote
(``agent.vision.zygote``) forked it, through every import (all of them happen
after the fork), to its exit: a file opened at import time and written later is
there, and so is anything native code (OpenCV, FFmpeg, ONNX Runtime) does
behind Python's back.

``Trace.parse`` stitches strace's ``<unfinished ...>``/``resumed`` halves back
together and assigns every thread to its process (``clone`` with
``CLONE_THREAD`` makes a thread, any other ``clone``/``fork``/``vfork`` a
process). The counters are the processes the zygote forked; ``violations``
lists, for one of them, every call a counter must never even *attempt* — a
denied attempt is a leak the sandbox happened to stop, and the tests must not
depend on the sandbox to notice it. ``zygote_violations`` holds the zygote to
rules of its own: it may fork (that is its job) and pass messages, but never
write a file, open any socket, start a program, or load counter code, a camera
or an image library (it lives as long as the daemon and must hold nothing).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

TRACED = (
    "execve,execveat,clone,clone3,fork,vfork,open,openat,openat2,creat,socket,socketpair,"
    "connect,bind,listen,accept,accept4,sendto,sendmsg,sendmmsg,write,writev,pwrite64,pwritev,"
    "pwritev2,mmap,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,truncate,ftruncate,"
    "link,linkat,symlink,symlinkat,memfd_create,mknod,mknodat,ptrace,process_vm_writev,"
    "process_vm_readv,shmget,mq_open"
)
"""The system calls the privacy tests trace (``strace -e trace=...``)."""

_LINE = re.compile(r"^(\d+)\s+(.*)$")
_CALL = re.compile(r"^([a-z_0-9]+)\((.*)\)\s+=\s+(.*)$", re.S)
_UNFINISHED = " <unfinished ...>"
_RESUMED = re.compile(r"^<\.\.\. ([a-z_0-9]+) resumed>(.*)$", re.S)
_WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND|O_TMPFILE")
_NEW_PROCESS = ("fork", "vfork", "clone", "clone3")
_CHANGES_FS = ("rename", "renameat", "renameat2", "unlink", "unlinkat", "mkdir", "mkdirat",
               "truncate", "ftruncate", "link", "linkat", "symlink", "symlinkat",
               "memfd_create", "mknod", "mknodat", "shmget", "mq_open")
_WRITES = ("write", "writev", "sendto", "sendmsg", "sendmmsg")
_ZYGOTE_MUST_NOT_LOAD = re.compile(
    r"/dev/video|/dev/media|cv2|onnxruntime|libav(codec|format|util)|"
    r"agent/vision/(__pycache__/)?(?!(__init__|zygote|privileges)\.)[a-z_]+\.")
"""Counter code (every agent.vision module but the zygote's own), cameras, image libraries."""
ZYGOTE_ARGV = "agent.vision.zygote"
_ALWAYS_FORBIDDEN = ("pwrite64", "pwritev", "pwritev2", "ptrace", "process_vm_writev",
                     "process_vm_readv", "bind", "listen", "accept", "accept4", "socketpair",
                     "execve", "execveat")


@dataclass(frozen=True, slots=True)
class Call:
    tid: int
    name: str
    args: str
    result: str

    @property
    def returned(self) -> int | None:
        match = re.match(r"-?\d+", self.result)
        return int(match.group()) if match else None

    @property
    def fd(self) -> int | None:
        match = re.match(r"(\d+)", self.args)
        return int(match.group(1)) if match else None


@dataclass(slots=True)
class Process:
    pid: int
    parent: int | None
    argv: str = ""
    """The arguments of its first successful execve ("" for a fork that never exec'd)."""
    calls: list[Call] = field(default_factory=list)
    """Every call since it was created, later execs included (they are violations)."""
    started: int = 0
    """Index in ``calls`` after its first execve: where its own program began."""
    children: list[int] = field(default_factory=list)

    @property
    def own_calls(self) -> list[Call]:
        """The calls of its own program (a fork+exec child's launcher calls left out)."""
        return self.calls[self.started:]


@dataclass(slots=True)
class Trace:
    processes: dict[int, Process]

    @classmethod
    def parse(cls, path: Path) -> Trace:
        processes: dict[int, Process] = {}
        owner: dict[int, int] = {}
        pending: dict[int, str] = {}
        for raw in path.read_text(errors="replace").splitlines():
            match = _LINE.match(raw)
            if not match:
                continue
            tid, text = int(match.group(1)), match.group(2)
            if text.endswith(_UNFINISHED):
                pending[tid] = text[: -len(_UNFINISHED)]
                continue
            resumed = _RESUMED.match(text)
            if resumed:
                text = pending.pop(tid, resumed.group(1) + "(") + resumed.group(2)
            call = _CALL.match(text)
            if not call:
                continue  # signals, exits
            pid = owner.setdefault(tid, tid)
            process = processes.setdefault(pid, Process(pid, None))
            item = Call(tid, call.group(1), call.group(2), call.group(3))
            process.calls.append(item)
            if item.name in ("execve", "execveat") and item.returned == 0 and not process.argv:
                process.argv, process.started = item.args, len(process.calls)
            child = item.returned
            if item.name in _NEW_PROCESS and child and child > 0:
                # Under load the new task's first calls (even an execve) are often logged
                # before clone() returns in its parent: keep what was already seen of it.
                if item.name.startswith("clone") and "CLONE_THREAD" in item.args:
                    owner[child] = pid
                    early = processes.pop(child, None)
                    if early is not None:
                        process.calls.extend(early.calls)
                else:
                    owner[child] = child
                    processes.setdefault(child, Process(child, pid)).parent = pid
                    process.children.append(child)
        return cls(processes)

    def zygotes(self) -> list[Process]:
        """The processes the daemon exec'd as the counters' zygote."""
        return [p for p in self.processes.values() if ZYGOTE_ARGV in p.argv]

    def counters(self) -> list[Process]:
        """The counter processes: every process a zygote forked (whatever it did after)."""
        zygotes = {p.pid for p in self.zygotes()}
        return [p for p in self.processes.values() if p.parent in zygotes]


@dataclass(frozen=True, slots=True)
class Allowed:
    """What a counter may do besides reading."""

    camera: tuple[str, int] | None = None
    """(address, port) of a network camera, None for a file or a local device."""
    max_write: int = 4096
    """Largest single write: a log line or one record; a frame is ~1 MB, a thumbnail ~20 kB."""
    write_paths: tuple[str, ...] = ("/dev/null",)


def violations(process: Process, allowed: Allowed) -> list[str]:
    """Every call of the counter process that a counter must never attempt."""
    camera_fds: set[int] = set()
    found = []
    for call in process.calls:
        check = _CHECKS.get(call.name)
        problem = check(call, allowed, camera_fds) if check else None
        if problem:
            found.append(problem)
    return found


def zygote_violations(process: Process) -> list[str]:
    """Every call of the zygote's own program that it must never attempt.

    The counters' rules without a camera (no socket at all, no connection, no
    file opened for writing but /dev/null, no big write, no exec), except that
    forking is its job and its answers go out with ``send``/``sendmsg`` (small,
    like any write); and it must not even read counter code, a camera or an
    image library.
    """
    camera_fds: set[int] = set()
    found = []
    for own in process.own_calls:
        if own.name in _NEW_PROCESS:
            continue
        call = replace(own, name="write") if own.name in ("sendto", "sendmsg") else own
        path = os.path.normpath(_first_string(call.args))  # not a loader's cv2/../lib
        if call.name in ("open", "openat", "openat2") and _ZYGOTE_MUST_NOT_LOAD.search(path):
            found.append(f"loaded {path!r}")
        check = _CHECKS.get(call.name)
        problem = check(call, Allowed(), camera_fds) if check else None
        if problem:
            found.append(problem)
    return found


def _new_process(call: Call, allowed: Allowed, camera_fds: set[int]) -> str | None:
    thread = call.name.startswith("clone") and "CLONE_THREAD" in call.args
    return None if thread else f"started a process: {call.name}({call.args[:120]})"


def _always(call: Call, allowed: Allowed, camera_fds: set[int]) -> str | None:
    return f"{call.name}({call.args[:160]}) = {call.result[:40]}"


def _changes_fs(call: Call, allowed: Allowed, camera_fds: set[int]) -> str | None:
    return f"changed the file system: {call.name}({call.args[:160]})"


def _open(call: Call, allowed: Allowed, camera_fds: set[int]) -> str | None:
    path = _first_string(call.args)
    writing = call.name == "creat" or _WRITE_FLAGS.search(call.args)
    harmless = path.startswith(allowed.write_paths) or path.startswith("/dev/video")
    return f"opened for writing: {path!r} = {call.result[:40]}" \
        if writing and not harmless else None


def _socket(call: Call, allowed: Allowed, camera_fds: set[int]) -> str | None:
    stream = allowed.camera is not None and re.match(r"AF_INET6?, SOCK_STREAM", call.args)
    return None if stream else f"socket({call.args})"


def _connect(call: Call, allowed: Allowed, camera_fds: set[int]) -> str | None:
    if allowed.camera is None or not _is_camera(call.args, allowed.camera):
        return f"connect({call.args[:160]})"
    if call.fd is not None:
        camera_fds.add(call.fd)
    return None


def _write(call: Call, allowed: Allowed, camera_fds: set[int]) -> str | None:
    if call.fd in camera_fds:
        return None
    if call.name != "write":
        return f"{call.name} on fd {call.fd} (not the camera)"
    size = call.returned or 0
    return f"write of {size} bytes on fd {call.fd}" if size > allowed.max_write else None


def _mmap(call: Call, allowed: Allowed, camera_fds: set[int]) -> str | None:
    shared_file = "MAP_SHARED" in call.args and "PROT_WRITE" in call.args \
        and not re.search(r",\s*-1,\s*0x?0*$", call.args)
    return f"shared writable mapping of a file: mmap({call.args[:120]})" if shared_file else None


_CHECKS = {
    **dict.fromkeys(_NEW_PROCESS, _new_process),
    **dict.fromkeys(_ALWAYS_FORBIDDEN, _always),
    **dict.fromkeys(_CHANGES_FS, _changes_fs),
    **dict.fromkeys(("open", "openat", "openat2", "creat"), _open),
    "socket": _socket,
    "connect": _connect,
    **dict.fromkeys(_WRITES, _write),
    "mmap": _mmap,
}


def written_bytes(process: Process, fds: Iterable[int] | None = None) -> int:
    """Bytes the process wrote with write/writev (all fds, or the given ones)."""
    wanted = None if fds is None else set(fds)
    return sum(call.returned or 0 for call in process.calls
               if call.name in ("write", "writev") and (wanted is None or call.fd in wanted))


def _first_string(args: str) -> str:
    match = re.search(r'"((?:[^"\\]|\\.)*)"', args)
    return match.group(1) if match else ""


def _is_camera(args: str, camera: tuple[str, int]) -> bool:
    host, port = camera
    return f"htons({port})" in args and host in args
