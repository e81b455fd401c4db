"""Stand-in counter processes for the supervisor tests.

They live in a module of their own that imports nothing heavy, because the
``spawn`` start method imports the target's module afresh in every child.
"""

from __future__ import annotations

import time
from multiprocessing.connection import Connection
from typing import Any

from agent.config.camera import CameraConfig
from agent.vision.child import EXIT_FINISHED, ChildSpec
from agent.vision.record import Kind, schema_for


def _now_s() -> int:
    return int(time.time())


def dying(spec: ChildSpec, channel: Connection) -> None:
    """Reports one interval ending at its start second, then crashes."""
    schema = schema_for(CameraConfig.model_validate(spec.settings))
    channel.send_bytes(schema.encode(Kind.INTERVAL, _now_s() * 1000, (("frames", 1),)))
    raise SystemExit(1)


def finishing(spec: ChildSpec, channel: Connection) -> None:
    """Reports one good interval and a switch, then says its video ended."""
    schema = schema_for(CameraConfig.model_validate(spec.settings))
    now = _now_s() * 1000
    channel.send_bytes(schema.encode(Kind.STATUS, now - 2000, (("source_up", 1),)))
    channel.send_bytes(schema.encode(Kind.INTERVAL, now - 1000,
                                     (("frames", 5), ("occupancy_max", 4))))
    raise SystemExit(EXIT_FINISHED)


def leaky(spec: ChildSpec, channel: Connection, payload: bytes) -> None:
    """Sends one good interval, then ``payload``, then would carry on sending good ones."""
    schema = schema_for(CameraConfig.model_validate(spec.settings))
    channel.send_bytes(schema.encode(Kind.INTERVAL, _now_s() * 1000 - 1000, (("frames", 2),)))
    channel.send_bytes(payload)
    time.sleep(1.0)
    channel.send_bytes(schema.encode(Kind.INTERVAL, _now_s() * 1000, (("frames", 3),)))
    time.sleep(60)


WRITE_FLAGS = 0
"""os.O_WRONLY | O_RDWR | O_APPEND | O_CREAT | O_TRUNC, filled in below."""
WATCHED = ("socket.", "subprocess.", "os.exec", "os.posix_spawn", "os.spawn", "os.system",
           "os.fork", "os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.truncate",
           "os.link", "os.symlink", "os.chmod", "os.chown", "os.utime", "shutil.", "http.",
           "urllib.", "ftplib.", "smtplib.", "telnetlib.", "sqlite3.", "mmap.", "webbrowser.")
"""Audit events that write or send anything, or start another program."""


def _opens_for_writing(mode: object, flags: object) -> bool:
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return isinstance(flags, int) and bool(flags & WRITE_FLAGS)


def audited(spec: ChildSpec, channel: Connection, findings: Any) -> None:
    """The real counter, with an audit hook recording every write, send and spawn.

    Bytecode caching is switched off first: writing ``__pycache__`` files is
    the interpreter's doing, not the counter's, and would blur the result.
    """
    import os  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from agent.vision.child import run_counter  # noqa: PLC0415

    global WRITE_FLAGS  # noqa: PLW0603
    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    sys.dont_write_bytecode = True
    events: list[tuple[str, str]] = []
    opened = [0]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            opened[0] += 1
            if _opens_for_writing(args[1], args[2]):
                events.append((event, repr(args)[:200]))
        elif event.startswith(WATCHED):
            events.append((event, repr(args)[:200]))

    sys.addaudithook(hook)
    code: object = 0
    try:
        run_counter(spec, channel)
    except SystemExit as exc:
        code = exc.code
    findings.put((code, opened[0], events))
    findings.close()
    findings.join_thread()
