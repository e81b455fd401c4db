"""The zygote: a small process that forks the counter processes, with the camera group.

Why: the daemon gives up the groups that open ``/dev/video*`` early in its life
(``agent.vision.camera_access``), yet a counter process must open its camera. So
before that, the daemon starts this zygote, which keeps only the camera groups,
drops every capability, makes itself non-dumpable (no ptrace, no
``/proc/<pid>/mem`` from the daemon) and from then on forks one counter process
per request. The daemon cannot choose what a counter runs: the entry point is
fixed on the zygote's command line when it starts, and a request is plain data
(JSON: camera id, camera settings, log level) plus two file descriptors passed
over a UNIX socket pair (SCM_RIGHTS): the write end of the record pipe and a
status socket, on which the zygote answers with the counter's pid and a pidfd
(signals without pid reuse races) and, when it has reaped the counter, its exit
code. No pickle: unpickling is running code, and a zygote that unpickled what
the daemon sent would give a compromised daemon the camera back.

A counter starts as a fork of a bare interpreter that imported only this module
and ``privileges`` (nothing of the counter's code, no OpenCV or ONNX Runtime), so
every import of the counter happens in the counter, under its own sandbox rules
and its own system-call trace. The zygote leaves when the daemon closes its end
of the socket (the daemon stopped or died); its counters then see their parent
change and leave too.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import traceback
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from agent.vision.privileges import (
    CAP_SETGID,
    Credentials,
    camera_gids,
    drop_capabilities,
    forbid_tracing,
    group_names,
    set_groups,
)

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

log = logging.getLogger(__name__)

MODULE = "agent.vision.zygote"
COUNTER_ENTRY = "agent.vision.child:run_counter"
MAX_REQUEST = 1 << 20
"""Bytes of one request (a camera's settings as JSON; a zone polygon is a few hundred)."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SETUP_SIGNAL = signal.SIGUSR1
"""Keeps a counter's set-up mode on for a while (``agent.vision.setup_mode``)."""
LEASE_S = 15.0
"""How long one ``SETUP_SIGNAL`` keeps set-up mode on (the daemon renews it every 5 s)."""
START_TIMEOUT_S = 60.0
"""An interpreter start on a loaded Raspberry Pi Zero takes seconds, not a minute."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """What a counter process is started with: plain data, sent to the zygote as JSON."""

    camera_id: str
    settings: dict[str, Any]
    """The camera section as JSON-able data, validated again in the counter."""
    log_level: str = "INFO"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ChildSpec:
        """Raises ValueError for anything but the three fields with their types."""
        fields = json.loads(data)
        if not isinstance(fields, dict) or set(fields) != {"camera_id", "settings", "log_level"}:
            raise ValueError("not a counter request")
        spec = cls(**fields)
        if not (isinstance(spec.camera_id, str) and isinstance(spec.settings, dict)
                and isinstance(spec.log_level, str)):
            raise ValueError("not a counter request")
        return spec


# ---- the daemon's end ---------------------------------------------------------------------


class Counter:
    """The daemon's handle on a counter process (its parent is the zygote, not the daemon)."""

    def __init__(self, pid: int, pidfd: int, status: socket.socket) -> None:
        self.pid = pid
        self.exitcode: int | None = None
        self._pidfd = pidfd
        self._status = status
        self._done = False
        self._lock = threading.Lock()

    def is_alive(self) -> bool:
        self.join(0.0)
        return not self._done

    def join(self, timeout_s: float | None = None) -> None:
        """Wait up to ``timeout_s`` for the zygote to report the exit."""
        if self._done:
            return
        with contextlib.suppress(OSError, ValueError):  # closed meanwhile by another thread
            select.select([self._status], [], [], timeout_s)
        with self._lock:
            if self._done:
                return
            try:
                data = self._status.recv(256, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            self._done = True
            if data:
                self.exitcode = int(json.loads(data)["exit"])
            else:  # the zygote died: this counter is an orphan and must not count on
                self._signal(signal.SIGKILL)
                log.error("counter process %d lost its zygote; killed", self.pid)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def renew_setup(self) -> None:
        """Renew the counter's set-up lease (a signal: it carries no data)."""
        self._signal(SETUP_SIGNAL)

    def close(self) -> None:
        with self._lock:
            self._done = True
            self._status.close()
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
            self._pidfd = -1

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(self._pidfd, signum)


class Zygote:
    """Starts the zygote process and asks it for counter processes (thread-safe)."""

    _shared: ClassVar[Zygote | None] = None

    def __init__(self, entry: str = COUNTER_ENTRY) -> None:
        self.entry = entry
        """``module:function`` every counter runs, called with (ChildSpec, Connection)."""
        self.after_withdrawal = False
        """Set once the daemon dropped its camera groups: a zygote started later lacks them."""
        self.pid: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._lock = threading.Lock()

    @classmethod
    def shared(cls) -> Zygote:
        """The daemon's zygote (one per process, started on first use or by the daemon)."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def start(self) -> None:
        """Start the zygote unless it runs; raises OSError when it does not come up."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                return
            self._close()
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                # The camera groups are looked up here: in the zygote, a group name lookup
                # would open a socket (nscd, sssd) that it has no business with.
                gids = ",".join(map(str, sorted(camera_gids())))
                with theirs:
                    process = subprocess.Popen(
                        [sys.executable, "-m", MODULE, self.entry, str(theirs.fileno()), gids],
                        pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
                hello = self._hello(ours, process)
            except BaseException:
                ours.close()
                raise
            self._process, self._control, self.pid = process, ours, hello["pid"]
        self._report(hello)

    @staticmethod
    def _hello(control: socket.socket, process: subprocess.Popen[bytes]) -> dict[str, Any]:
        control.settimeout(START_TIMEOUT_S)
        try:
            hello = json.loads(control.recv(4096) or b"null")
        except (OSError, ValueError) as exc:
            process.kill()
            process.wait()
            raise OSError(f"the counter zygote did not start: {exc}") from exc
        if not isinstance(hello, dict):
            process.wait()
            raise OSError(f"the counter zygote exited with code {process.returncode}")
        control.settimeout(None)
        return hello

    def launch(self, spec: ChildSpec, channel: Connection) -> Counter:
        """A new counter process running the entry point with ``spec`` and ``channel``."""
        self.start()
        assert self._control is not None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with theirs:
                socket.send_fds(self._control, [spec.to_json()],
                                [channel.fileno(), theirs.fileno()])
            ours.settimeout(START_TIMEOUT_S)
            answer, fds, _, _ = socket.recv_fds(ours, 256, 1)
            if not answer or len(fds) != 1:
                raise OSError("the counter zygote refused the request")
            ours.settimeout(None)
        except BaseException:
            ours.close()
            raise
        return Counter(int(json.loads(answer)["pid"]), fds[0], ours)

    def close(self) -> None:
        """Stop the zygote (its running counters see their parent go and leave)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(10)
            self._process = None

    def _report(self, hello: dict[str, Any]) -> None:
        log.info("counter zygote %d started; counter processes get the groups %s",
                 hello["pid"], group_names(hello["groups"]))
        if hello["problems"]:
            log.warning("counter zygote: %s", "; ".join(hello["problems"]))
        if self.after_withdrawal:
            log.warning("the counter zygote was started after the daemon gave up its camera "
                        "groups (a camera added by a reload, or the zygote died): counters "
                        "cannot open a local camera device until the agent restarts")


# ---- the zygote's end ---------------------------------------------------------------------


def _narrow(camera: frozenset[int]) -> dict[str, Any]:
    """Keep only the camera groups, drop every capability, forbid ptrace: the hello message."""
    problems = []
    held = Credentials.of()
    if held.holds(CAP_SETGID):
        try:
            set_groups(held.groups & camera)
        except OSError as exc:
            problems.append(f"groups not narrowed to the camera's: {exc}")
    for step in (drop_capabilities, forbid_tracing):
        try:
            step()
        except OSError as exc:
            problems.append(str(exc))
    if Credentials.of().capable:
        problems.append("capabilities still held")
    return {"pid": os.getpid(), "groups": sorted(os.getgroups()), "problems": problems}


def serve(control: socket.socket, entry: str) -> None:
    """Fork a counter per request until the daemon closes its end; report exits."""
    # Ctrl-C and systemd's stop are for the daemon: it stops the counters (they report their
    # partial interval, and their exit comes through here), then closes its end. Blocked, not
    # ignored: a counter inherits the mask, and one told to stop before it unblocked them
    # finds the signal pending (an ignored one would be lost).
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so SIGCHLD wakes the loop
    status: dict[int, socket.socket] = {}
    with selectors.DefaultSelector() as selector:
        selector.register(control, selectors.EVENT_READ)
        selector.register(wake_r, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                if key.fileobj is control and not _serve_one(control, entry, status):
                    return
                if key.fileobj == wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 512)
            _reap(status)


def _serve_one(control: socket.socket, entry: str, status: dict[int, socket.socket]) -> bool:
    """Fork a counter for one request; False when the daemon has gone."""
    data, fds, flags, _ = socket.recv_fds(control, MAX_REQUEST, 2)
    if not data and not fds:
        return False
    try:
        if len(fds) != 2 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise ValueError("a malformed request")
        spec = ChildSpec.from_json(data)
    except (ValueError, TypeError):
        for fd in fds:
            os.close(fd)
        return True  # nothing started: the daemon's wait for an answer ends with EOF
    channel_fd, status_fd = fds
    pid = os.fork()
    if pid == 0:
        _counter(entry, spec, channel_fd)
    os.close(channel_fd)
    answer = socket.socket(fileno=status_fd)
    pidfd = os.pidfd_open(pid)
    try:
        socket.send_fds(answer, [json.dumps({"pid": pid}).encode()], [pidfd])
        status[pid] = answer
    except OSError:  # the daemon gave up waiting: nobody would supervise this counter
        os.kill(pid, signal.SIGKILL)
        answer.close()
    finally:
        os.close(pidfd)
    return True


def _reap(status: dict[int, socket.socket]) -> None:
    while True:
        try:
            pid, code = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        answer = status.pop(pid, None)
        if answer is not None:
            with contextlib.suppress(OSError):
                answer.send(json.dumps({"exit": os.waitstatus_to_exitcode(code)}).encode())
            answer.close()


def _counter(entry: str, spec: ChildSpec, channel_fd: int) -> NoReturn:
    """In the forked child: shed the zygote's state and run the entry point; never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        # Only stdio and the record pipe stay open: not the daemon's socket, not the status
        # sockets of the other counters. (The frames holding their objects never unwind:
        # this function ends in os._exit.)
        os.closerange(3, channel_fd)
        os.closerange(channel_fd + 1, os.sysconf("SC_OPEN_MAX"))
        from multiprocessing.connection import Connection  # noqa: PLC0415

        module, _, name = entry.partition(":")
        getattr(importlib.import_module(module), name)(
            spec, Connection(channel_fd, readable=False))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except BaseException:  # reported; the exit code says it
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def main(argv: list[str]) -> None:
    """``python -m agent.vision.zygote ENTRY FD CAMERA_GIDS`` (what ``Zygote.start`` runs)."""
    entry, fd = argv[1], int(argv[2])
    camera = frozenset(int(gid) for gid in argv[3].split(",") if gid)
    # Ignored here, so a counter is born ignoring it: the daemon renews a set-up lease as
    # soon as it holds the new counter's pidfd, which can be before the forked child has
    # run a single line (a loaded CPU), and its default action would kill the counter.
    # The counter installs its handler when it starts listening (agent.vision.child).
    signal.signal(SETUP_SIGNAL, signal.SIG_IGN)
    control = socket.socket(fileno=fd)
    control.send(json.dumps(_narrow(camera)).encode())
    serve(control, entry)


if __name__ == "__main__":
    main(sys.argv)
