"""A real Home Assistant shows the box's sensors, and loses them with the agent.

Mosquitto on a free port, Home Assistant 2025.4 (tests/homeassistant_peer.py) onboarded
and given the MQTT integration through its config flow, and ``lokaalmeten simulate``
(the real daemon on emulated sensors) with ``[mqtt.home_assistant]``. Asserted through
Home Assistant's REST API: the entities exist with its units and device classes and a
numeric state; a sensor removed from the config disappears; the agent killed with
SIGKILL leaves every entity ``unavailable`` (the broker's Last Will on the status topic).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.homeassistant_peer import HomeAssistant
from tests.integration.fast_box import SimulatedBox, fast_head
from tests.mqtt_broker import Broker, wait_until

pytestmark = pytest.mark.slow

SENSORS = """
[sensors.pm]
model = "sds011"
port = "/dev/ttyUSB0"
interval_s = 1
window_s = 2
warmup_s = 0
[sensors.climate]
model = "bme280"
bus = 1
interval_s = 1
window_s = 2
warmup_s = 0
"""
NOISE = """
[sensors.noise]
model = "microphone"
device = "default"
interval_s = 2
window_s = 2
"""
EXPECTED = {  # entity → (unit, device class) as Home Assistant must show them
    "sensor.lokaalmeten_habox_pm_pm2_5": ("µg/m³", "pm25"),
    "sensor.lokaalmeten_habox_pm_pm10": ("µg/m³", "pm10"),
    "sensor.lokaalmeten_habox_climate_temperature": ("°C", "temperature"),
    "sensor.lokaalmeten_habox_climate_relative_humidity": ("%", "humidity"),
    "sensor.lokaalmeten_habox_climate_pressure": ("hPa", "atmospheric_pressure"),
}
NOISE_EXPECTED = {
    "sensor.lokaalmeten_habox_noise_laeq": ("dBA", "sound_pressure"),
    "sensor.lokaalmeten_habox_noise_lceq": ("dB", "sound_pressure"),
}
CONNECTED = "binary_sensor.lokaalmeten_habox_connected"


def configure(agent: SimulatedBox, sensors: str) -> None:
    agent.config.write_text(fast_head("habox", 30) + sensors + "[mqtt.home_assistant]\n")


@pytest.fixture
def home_assistant(home_assistant_python: Path, broker: Broker,
                   tmp_path: Path) -> Iterator[HomeAssistant]:
    instance = HomeAssistant(home_assistant_python, tmp_path / "ha")
    instance.start()
    try:
        instance.onboard()
        instance.add_mqtt(broker)
        yield instance
    finally:
        instance.stop()


def all_numeric(home_assistant: HomeAssistant, entities: dict[str, tuple[str, str]]
                ) -> Callable[[], bool]:
    """A condition: every entity exists and shows a number."""
    def check() -> bool:
        states = home_assistant.states()
        return all(e in states and numeric(states[e]["state"]) for e in entities)
    return check


def numeric(state: str) -> bool:
    try:
        float(state)
    except ValueError:
        return False
    return True


def test_home_assistant_shows_the_sensors_and_loses_them_on_the_last_will(
        home_assistant: HomeAssistant, broker: Broker, tmp_path: Path) -> None:
    agent = SimulatedBox(tmp_path, broker)
    configure(agent, SENSORS + NOISE)
    agent.start()
    try:
        wanted = {**EXPECTED, **NOISE_EXPECTED}
        assert wait_until(all_numeric(home_assistant, wanted), 180, step_s=1.0), \
            {e: s["state"] for e, s in home_assistant.states().items() if "habox" in e}
        states = home_assistant.states()
        for entity, (unit, device_class) in wanted.items():
            attributes = states[entity]["attributes"]
            assert (attributes["unit_of_measurement"], attributes["device_class"],
                    attributes["state_class"]) == (unit, device_class, "measurement"), entity
            assert "time_ms" in attributes, attributes  # the measurement object
        assert all(states[e]["attributes"]["window_s"] == 2 for e in EXPECTED)
        assert states[CONNECTED]["state"] == "on"

        agent.signal()  # restarted without the microphone: its entities are removed
        configure(agent, SENSORS)
        agent.start()
        assert wait_until(lambda: not set(NOISE_EXPECTED) & set(home_assistant.states()),
                          120, step_s=1.0)
        assert wait_until(all_numeric(home_assistant, EXPECTED), 120, step_s=1.0)

        agent.signal(signal.SIGKILL)  # no goodbye: the broker publishes the Last Will
        assert wait_until(lambda: all(home_assistant.states()[e]["state"] == "unavailable"
                                      for e in EXPECTED), 120, step_s=1.0), \
            {e: home_assistant.states()[e]["state"] for e in EXPECTED}
        assert home_assistant.states()[CONNECTED]["state"] == "off"
    finally:
        agent.close()

