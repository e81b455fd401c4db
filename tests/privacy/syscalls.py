"""Reading an ``strace -f`` log of the whole daemon: which process did what, and what it may not.

The daemon runs under ``strace -f`` from its first instruction, so everything
the counter process does is in the log, from the moment multiprocessing's
``spawn`` exec'd it, through every import, to its exit: a file opened at
import time and written later is there, and so is anything native code
(OpenCV, FFmpeg, ONNX Runtime) does behind Python's back.

``Trace.parse`` stitches strace's ``<unfinished ...>``/``resumed`` halves back
together and assigns every thread to its process (``clone`` with
``CLONE_THREAD`` makes a thread, any other ``clone``/``fork``/``vfork`` a
process). ``violations`` lists, for one process, every call a counter must
never even *attempt* — a denied attempt is a leak the sandbox happened to
stop, and the tests must not depend on the sandbox to notice it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
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
    calls: list[Call] = field(default_factory=list)
    """Calls made since the process's last successful execve."""
    children: list[int] = field(default_factory=list)


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
            if item.name in ("execve", "execveat") and item.returned == 0:
                process.argv, process.calls = item.args, []
                continue
            process.calls.append(item)
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

    def counters(self) -> list[Process]:
        """The counter processes: children that multiprocessing's spawn exec'd to run one."""
        return [p for p in self.processes.values()
                if "spawn_main" in p.argv and "resource_tracker" not in p.argv]


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
