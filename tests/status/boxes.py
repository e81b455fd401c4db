"""Box facts for the status tests: a healthy box, and ways to break it."""

from __future__ import annotations

from dataclasses import replace

from agent.health.system import SystemFacts
from agent.status.facts import BoxFacts, BrokerFacts, CameraFacts, SensorFacts

NOW_MS = 1_800_000_000_000

SENSOR = SensorFacts("pm", "sds011", "Nova Fitness SDS011", "ok", True, False, 0, 2, 1, 0,
                     NOW_MS - 3000, "")
CAMERA = CameraFacts("square", True, True, 0, 0)
BROKER = BrokerFacts("broker.example", 8883, True, 1, 40, 1234, "")
SYSTEM = SystemFacts(cpu_temperature_c=48.5, throttled=0, load_1m=0.3, disk_free_mb=5000.0,
                     rss_mb=60.0, clock_synchronized=True)


def healthy(**changes: object) -> BoxFacts:
    facts = BoxFacts("box-1", "b00t", "0.1.0", NOW_MS, 3600.0, BROKER, 0, 0, 0, 64.0, SYSTEM,
                     (SENSOR,), (CAMERA,))
    return replace(facts, **changes)  # type: ignore[arg-type]


def broker(**changes: object) -> BrokerFacts:
    return replace(BROKER, **changes)  # type: ignore[arg-type]


def sensor(**changes: object) -> SensorFacts:
    return replace(SENSOR, **changes)  # type: ignore[arg-type]
