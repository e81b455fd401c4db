"""There is one clock: no module of ``agent/`` but ``agent/clock.py`` reads or waits on
``time`` itself, except the few listed here with their reason.

Why a test: the clock is only worth having if nothing goes round it. One stray
``time.sleep`` in a component makes its tests wait in real time again, or patch the
module, and a stray ``time.time()`` stamps something a fake clock cannot move. The
check reads the source (no import, no execution), so it also catches a default
argument such as ``clock=time.monotonic``. ``time.perf_counter`` is not a clock here:
it measures how long work took (inference, a benchmark), which a fake clock could not
tell. Formatting a given time (``time.strftime``, ``time.gmtime(seconds)``) is no
reading either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import agent

READINGS = frozenset({"sleep", "monotonic", "monotonic_ns", "time", "time_ns"})
"""What the ``time`` module offers that reads the clock or waits on it."""

EXCEPTIONS = {
    "clock.py": "the one clock itself",
    "emulators/serial_pty.py": "the device's side of a real pseudo-terminal: its select "
                               "loop and its device's active reports keep the kernel's time, "
                               "as the UART it stands in for does",
}
"""Modules (relative to ``agent/``) allowed to read ``time``; docs/architecture.md says why."""


def clock_readings(source: str) -> list[str]:
    """``time.<reading>`` uses in ``source`` (any alias of the module, any ``from`` import),
    as 'line: name'."""
    tree = ast.parse(source)
    modules: set[str] = set()  # names the time module is bound to
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == "time"}
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            found += [f"{node.lineno}: from time import {a.name}"
                      for a in node.names if a.name in READINGS]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in READINGS \
                and isinstance(node.value, ast.Name) and node.value.id in modules:
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return sorted(found, key=lambda line: int(line.split(":")[0]))


def violations(root: Path) -> dict[str, list[str]]:
    """Every module under ``root`` that reads ``time`` and is not an exception."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if name not in EXCEPTIONS and (uses := clock_readings(path.read_text())):
            found[name] = uses
    return found


AGENT = Path(agent.__file__).parent


def test_no_module_reads_time_around_the_clock() -> None:
    assert violations(AGENT) == {}, "take an agent.clock.Clock (see agent/clock.py)"


def test_every_exception_still_needs_to_be_one() -> None:
    stale = [name for name in EXCEPTIONS if not clock_readings((AGENT / name).read_text())]
    assert stale == [], "no longer reads time: drop it from EXCEPTIONS and the docs"


def test_the_check_catches_each_way_of_reading_time(tmp_path: Path) -> None:
    """Planted in a throwaway tree: a call, an alias, a from-import and a default argument."""
    (tmp_path / "clock.py").write_text("import time\nNOW = time.monotonic\n")
    (tmp_path / "sampler.py").write_text("import time\n\ndef wait() -> None:\n"
                                         "    time.sleep(1)\n")
    (tmp_path / "stamps.py").write_text("import time as t\nfrom time import time_ns\n"
                                        "def stamp(now=t.time):\n    return now()\n")
    (tmp_path / "fine.py").write_text("import time\n"
                                      "took = time.perf_counter()\n"
                                      "label = time.strftime('%Y', time.gmtime(0))\n"
                                      "def f(clock):\n    return clock.time()\n")
    assert violations(tmp_path) == {
        "sampler.py": ["4: time.sleep"],
        "stamps.py": ["2: from time import time_ns", "3: t.time"],
    }
