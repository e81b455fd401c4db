"""Shared fixtures: a real broker per test that needs one; Home Assistant's venv."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.homeassistant_peer import ha_python
from tests.mqtt_broker import Broker, Recorder


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("LOKAALMETEN_HARDWARE") == "1":
        return
    skip = pytest.mark.skip(reason="needs hardware; set LOKAALMETEN_HARDWARE=1")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    instance = Broker(tmp_path_factory.mktemp("mosquitto"))
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def recorder(broker: Broker) -> Iterator[Recorder]:
    rec = Recorder(broker).start()
    yield rec
    rec.stop()


@pytest.fixture(scope="session")
def home_assistant_python() -> Path:
    """Installed on first use (minutes), from the cache after (tests/homeassistant_peer.py)."""
    return ha_python()
