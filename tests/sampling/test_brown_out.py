"""A Sensirion sensor that browns out comes back idle; the worker restarts its measurement.

After a power dip an SCD4x, SPS30 or SEN5x is powered again but idle: it
answers every data-ready poll with "not ready" and never measures again on
its own. The worker must notice the streak of slots without data, start the
measurement again, and carry on, with the restart counted for the heartbeat.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from agent.bus.i2c import I2CDevice
from agent.config.profiles import all_profiles
from agent.config.sensors import ResolvedSensor, SensorConfig
from agent.emulators.i2c_bus import EmulatedI2CBus
from agent.emulators.scd4x import Scd4xDevice
from agent.emulators.sen5x import Sen5xDevice
from agent.emulators.sps30 import Sps30Device
from agent.models import Measurement
from agent.sampling.worker import SensorWorker
from agent.sensors import registry as drivers
from tests.clock import FakeClock
from tests.mqtt_broker import wait_until

# model, its emulator (at the datasheet's own pace: the clock is fake), the quantity it
# always reports
MODELS: list[tuple[str, Callable[..., Any], str]] = [
    ("scd41", partial(Scd4xDevice, variant="scd41"), "co2"),
    ("sps30", Sps30Device, "pm2_5"),
    ("sen55", partial(Sen5xDevice, "sen55"), "pm2_5"),
]


@pytest.mark.parametrize(("model", "emulator", "quantity"), MODELS, ids=[m[0] for m in MODELS])
def test_a_browned_out_sensor_is_restarted(model: str, emulator: Callable[..., Any],
                                           quantity: str) -> None:
    profile = all_profiles()[model].model_copy(update={"min_interval_s": 0.05,
                                                      "warmup_s": 0.0})
    config = SensorConfig.model_validate(
        {"model": model, "interval_s": 6.0, "window_s": 6.0, "bus": 1,
         "restart_after_not_ready": 3},
        context={"profiles": {model: profile}})
    sensor = ResolvedSensor.resolve("s", config, profile)
    assert sensor.address is not None
    clock = FakeClock()  # the chip, its bus and the worker share one fake time line
    device = emulator(clock=clock)
    bus = EmulatedI2CBus()
    bus.attach(sensor.address, device)
    spec = drivers()[model]
    lock = threading.Lock()
    got: list[Measurement] = []

    def opener(s: ResolvedSensor):
        return spec.build(I2CDevice(bus, sensor.address, lock, clock), spec.options_type()), \
            lambda: None

    worker = SensorWorker(sensor, opener, got.extend, clock)
    worker.start()
    try:
        assert wait_until(lambda: sum(m.quantity == quantity for m in got) >= 3, 20)
        device.power_cycle()  # the brown-out: idle from now on, until told to measure
        before = sum(m.quantity == quantity for m in got)
        assert wait_until(lambda: worker.health().measurement_restarts >= 1, 20)
        assert wait_until(lambda: sum(m.quantity == quantity for m in got) >= before + 3, 20), \
            "measuring again after the restart"
    finally:
        worker.stop()
        worker.join(10)
    health = worker.health()
    assert health.not_ready_total >= 3 and health.measurement_restarts >= 1
    assert health.resets == 0 and health.reopens == 0, "restarting the measurement was enough"
