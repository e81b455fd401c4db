"""Stand-in counter processes for the supervisor tests.

They live in a module of their own that imports nothing heavy, because every
child imports it afresh: a zygote started with ``Zygote("tests.vision.children:dying")``
forks children that run ``dying`` (the entry point is the zygote's, never the
request's), and ``spawn`` imports the target's module in every child too.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from agent.config.camera import CameraConfig
from agent.vision.child import EXIT_FINISHED, ChildSpec
from agent.vision.record import HEADER, MAGIC, PAIR, Kind, Schema, schema_for


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


def lingering(spec: ChildSpec, channel: Connection) -> None:
    """Sends nothing and stays a minute (unless killed)."""
    time.sleep(60)


def obedient(spec: ChildSpec, channel: Connection) -> None:
    """Leaves with code 0 on SIGTERM, as the real counter does; says its source is up once
    it listens for it."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    schema = schema_for(CameraConfig.model_validate(spec.settings))
    channel.send_bytes(schema.encode(Kind.STATUS, _now_s() * 1000, (("source_up", 1),)))
    time.sleep(60)


def _forged(schema: Schema, index: int, value: float) -> bytes:
    """A well-formed record header over a pair the schema does not have."""
    return HEADER.pack(MAGIC, 1, Kind.INTERVAL, schema.fingerprint, _now_s() * 1000, 2) + \
        PAIR.pack(0, 1.0) + PAIR.pack(index, value)


THUMBNAIL = bytes(range(256)) * (160 * 120 * 3 // 256)
"""A 160x120 colour thumbnail's worth of bytes."""

LEAKS: dict[str, Callable[[Schema], bytes]] = {
    "jpeg bytes": lambda _: b"\xff\xd8\xff\xe0" + bytes(60),
    "pickle": lambda _: b"\x80\x04\x95" + bytes(40),
    "thumbnail in one message": lambda _: THUMBNAIL,
    "track coordinates as extra quantities": lambda schema: _forged(schema, 999, 412.0),
    "pixel value under a real name": lambda schema: _forged(schema, 0, 37.25),  # not whole
    "nan": lambda schema: _forged(schema, 0, float("nan")),
}
"""What ``leaky`` sends, by camera id (made in the child: times are the child's now)."""


def leaky(spec: ChildSpec, channel: Connection) -> None:
    """Sends one good interval, then the leak named by its camera id, then would carry on
    sending good ones."""
    schema = schema_for(CameraConfig.model_validate(spec.settings))
    channel.send_bytes(schema.encode(Kind.INTERVAL, _now_s() * 1000 - 1000, (("frames", 2),)))
    channel.send_bytes(LEAKS[spec.camera_id](schema))
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
