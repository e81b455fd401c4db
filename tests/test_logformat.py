"""Log lines under systemd carry journald priorities; elsewhere a time and the level name."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import logging
from agent.logformat import configure
configure("DEBUG", "counter[cam]")
log = logging.getLogger("agent.demo")
log.debug("fine detail")
log.info("started")
log.warning("camera rtsp://user:secret@cam/stream dropped")
try:
    raise ValueError("boom")
except ValueError:
    log.exception("crashed")
"""


def run(journal: bool) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    if journal:
        env["JOURNAL_STREAM"] = "8:12345"
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            env=env, check=True)
    return result.stderr.splitlines()


def test_under_systemd_every_line_starts_with_its_syslog_priority() -> None:
    lines = run(journal=True)
    assert lines[:3] == ["<7>counter[cam] agent.demo: fine detail",
                         "<6>counter[cam] agent.demo: started",
                         "<4>counter[cam] agent.demo: camera rtsp://***@cam/stream dropped"]
    traceback = lines[3:]
    assert traceback[0] == "<3>counter[cam] agent.demo: crashed"
    assert all(line.startswith("<3>") for line in traceback), "a traceback stays an error"
    assert any("ValueError: boom" in line for line in traceback)


def test_elsewhere_lines_carry_a_time_and_the_level_name() -> None:
    first = run(journal=False)[1]
    assert first.endswith(" INFO counter[cam] agent.demo: started")
    assert first[:4].isdigit(), "a time stamp first"
