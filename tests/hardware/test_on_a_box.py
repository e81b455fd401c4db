"""Checks that need the real thing: run on an installed box with LOKAALMETEN_HARDWARE=1.

    LOKAALMETEN_HARDWARE=1 LOKAALMETEN_HARDWARE_CONFIG=/etc/lokaalmeten/agent.toml \\
        .venv/bin/pytest tests/hardware -v

Stop the service first: it holds the serial ports and keeps the sensors measuring.
This machine has no sensors, microphone or camera, so these are skipped in CI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.bus.audio import open_audio
from agent.bus.provider import HardwareBuses
from agent.config import load_config
from agent.errors import DataNotReady
from agent.plan import plan, sensor_opener
from tests.mqtt_broker import wait_until

pytestmark = pytest.mark.hardware


def _configured_sensors() -> list[str]:
    path = os.environ.get("LOKAALMETEN_HARDWARE_CONFIG")
    if not path:
        return []
    return [s.sensor_id for s in load_config(Path(path)).resolved_sensors()]


def test_microphone_capture_delivers_every_block() -> None:
    """Two seconds from the default capture device at 48 kHz, no overruns."""
    device = os.environ.get("LOKAALMETEN_AUDIO_DEVICE", "default")
    source = open_audio(device, 48_000, block_s=0.1)
    blocks = []
    source.start()
    try:
        for _ in range(40):
            block = source.read(0.5)
            if block is not None:
                blocks.append(block)
            if len(blocks) >= 20:
                break
    finally:
        source.stop()
        source.close()
    assert len(blocks) >= 20
    assert source.overruns == 0
    assert all(b.dtype.kind == "f" and b.ndim == 1 for b in blocks)


@pytest.mark.parametrize("sensor_id", _configured_sensors() or ["(no config given)"])
def test_every_configured_sensor_reads(sensor_id: str) -> None:
    config_path = os.environ.get("LOKAALMETEN_HARDWARE_CONFIG")
    if not config_path:
        pytest.skip("set LOKAALMETEN_HARDWARE_CONFIG to the box's config")
    the_plan = plan(load_config(Path(config_path)), config_path)
    sensor = next(s for s in the_plan.sensors if s.sensor_id == sensor_id)
    driver, close = sensor_opener(the_plan, HardwareBuses())(sensor)
    readings = []
    try:
        driver.start()

        def read_once() -> bool:
            try:
                readings.extend(driver.read())
            except DataNotReady:
                return False
            return True

        assert wait_until(read_once, 60, sensor.profile.min_interval_s)
    finally:
        driver.stop()
        close()
    names = {q.name for q in sensor.profile.quantities}
    assert readings and {r.quantity for r in readings} <= names
