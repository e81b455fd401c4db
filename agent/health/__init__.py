"""The agent's view of itself: heartbeat measurements and systemd notifications."""
