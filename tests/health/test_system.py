"""Host facts for the heartbeat, read from the real /proc, /sys and the kernel clock."""

from __future__ import annotations

from pathlib import Path

from agent.health.system import read_system


def test_host_facts_are_read_or_left_out(tmp_path: Path) -> None:
    facts = read_system(tmp_path)
    assert facts.clock_synchronized in (True, False)  # Linux always answers adjtimex
    assert facts.disk_free_mb is not None and facts.disk_free_mb > 0
    assert facts.rss_mb is not None and facts.rss_mb > 10
    assert facts.load_1m >= 0
