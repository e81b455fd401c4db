"""Stand-in counter processes for the supervisor tests.

They live in a module of their own that imports nothing heavy, because the
``spawn`` start method imports the target's module afresh in every child.
"""

from __future__ import annotations

import time
from typing import Any

from agent.vision.process import EXIT_FINISHED, ChildSpec, CounterRecord


def _leave(output: Any, code: int) -> None:
    output.close()
    output.join_thread()
    raise SystemExit(code)


def dying(spec: ChildSpec, output: Any, stop: Any) -> None:
    """Reports its start time as one interval, then crashes."""
    output.put(CounterRecord("interval", time.time_ns() // 1_000_000, (("frames", 1),)))
    _leave(output, 1)


def leaky(spec: ChildSpec, output: Any, stop: Any) -> None:
    """Tries to send things other than numbers, then one proper record, then finishes."""
    import numpy as np  # noqa: PLC0415

    output.put(b"\xff\xd8\xff\xe0 not really a jpeg")
    output.put(np.zeros((4, 4, 3), np.uint8))
    output.put({"frames": 5})
    output.put(CounterRecord("interval", 1, (("frames", b"\x00\x01"),)))
    output.put(CounterRecord("interval", 1, (("frames", float("nan")),)))
    output.put(CounterRecord("interval", 1, (("frames", np.float64(3.0)),)))
    output.put(CounterRecord("interval", 123_000, (("frames", 5), ("occupancy_max", 2)),
                             (("suppress_below", 2.0),)))
    _leave(output, EXIT_FINISHED)


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


def audited(spec: ChildSpec, output: Any, stop: Any, findings: Any) -> None:
    """The real counter, with an audit hook recording every write, send and spawn.

    Bytecode caching is switched off first: writing ``__pycache__`` files is
    the interpreter's doing, not the counter's, and would blur the result.
    """
    import os  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from agent.vision.process import run_counter  # noqa: PLC0415

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
        run_counter(spec, output, stop)
    except SystemExit as exc:
        code = exc.code
    findings.put((code, opened[0], events))
    findings.close()
    findings.join_thread()
