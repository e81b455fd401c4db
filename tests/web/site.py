"""A real status service on a free port, fed with fixed box facts (no daemon needed)."""

from __future__ import annotations

import http.client
import time
from pathlib import Path

from agent.config.health import HealthConfig
from agent.config.status import StatusConfig
from agent.status.facts import BoxFacts
from agent.status.service import StatusService
from tests.mqtt_broker import free_port
from tests.status.boxes import healthy


class Box:
    """The facts the service reads; a test changes ``facts`` to break the box."""

    def __init__(self) -> None:
        self.facts: BoxFacts = healthy()

    def __call__(self) -> BoxFacts:
        return self.facts


def service(tmp_path: Path, box: Box, **status: object) -> StatusService:
    config = StatusConfig.model_validate({"port": free_port(), **status})
    return StatusService(config, HealthConfig(summary_interval_s=0), tmp_path, box,
                         {("pm", "pm2_5"): "mean"}, cameras=["square"],
                         wall_ms=lambda: time.time_ns() // 1_000_000,
                         monotonic=time.monotonic)


def get(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET",
        host: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, \
            response.read()
    finally:
        conn.close()
