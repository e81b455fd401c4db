"""The config head every daemon-as-a-process test uses: quick reconnects and commits."""

from __future__ import annotations


def fast_head(device_id: str, health_interval_s: float) -> str:
    """TOML for a box that reconnects, commits and reports quickly (sensors follow)."""
    return f"""
device_id = "{device_id}"
[mqtt]
keepalive_s = 5
first_connect_jitter_s = 0
reconnect_min_s = 0.2
reconnect_max_s = 1.0
[storage]
commit_interval_s = 0.5
[health]
interval_s = {health_interval_s}
min_send_interval_s = {health_interval_s}
refresh_s = {health_interval_s}
"""
