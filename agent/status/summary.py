"""The periodic one-line log summary: a journal that shows the box is alive.

Between its start and stop lines the daemon logs only trouble; an operator reading
``journalctl`` a week later wants to see, every ten minutes, that data went out. The
line carries counts only, never a measured value (house rule).
"""

from __future__ import annotations

from agent.status.facts import BoxFacts


def summary_line(facts: BoxFacts, sent_before: int, interval_s: float) -> str:
    """E.g. ``sent 1520 measurements (+120 in 10 min), backlog 0, broker connected,
    sensors up 3/3, cameras up 1/1``."""
    up = [s for s in facts.sensors if s.up]
    down = sorted(s.sensor_id for s in facts.sensors if not s.up)
    parts = [f"sent {facts.broker.measurements_acked} measurements "
             f"(+{max(0, facts.broker.measurements_acked - sent_before)} in "
             f"{interval_s / 60:g} min)",
             f"backlog {facts.outbox_depth}",
             "broker connected" if facts.broker.connected else "broker NOT connected",
             f"sensors up {len(up)}/{len(facts.sensors)}"
             + (f" (down: {', '.join(down)})" if down else "")]
    if facts.outbox_dropped_total:
        parts.insert(2, f"dropped {facts.outbox_dropped_total}")
    if facts.cameras:
        cameras_up = sum(c.up and c.source_up for c in facts.cameras)
        parts.append(f"cameras up {cameras_up}/{len(facts.cameras)}")
    return ", ".join(parts)
