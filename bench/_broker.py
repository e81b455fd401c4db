"""A throwaway Mosquitto on a free port for benchmarks (same helper the tests use)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.mqtt_broker import Broker, Recorder, free_port, wait_until

__all__ = ["Broker", "Recorder", "free_port", "wait_until"]
