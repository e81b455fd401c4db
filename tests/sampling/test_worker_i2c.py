"""An I2C sensor that vanishes from the bus and returns is picked up without a restart."""

from __future__ import annotations

import errno
import threading

from agent.bus.i2c import I2CDevice
from agent.config.profiles import all_profiles
from agent.config.sensors import ResolvedSensor, SensorConfig
from agent.emulators.i2c_bus import EmulatedI2CBus
from agent.emulators.sht3x import Sht3xDevice
from agent.models import Measurement
from agent.sampling.worker import SensorWorker
from agent.sensors.sht3x import Sht3x, Sht3xOptions
from tests.clock import FakeClock
from tests.mqtt_broker import wait_until

ADDRESS = 0x44


def test_vanish_and_return_on_the_bus_recovers_and_counts() -> None:
    profile = all_profiles()["sht3x"].model_copy(update={"min_interval_s": 0.05})
    config = SensorConfig.model_validate(
        {"model": "sht3x", "interval_s": 0.1, "window_s": 0.1, "reset_after_failures": 2,
         "reopen_after_failures": 4}, context={"profiles": {"sht3x": profile}})
    sensor = ResolvedSensor.resolve("rh", config, profile)
    bus = EmulatedI2CBus()
    clock = FakeClock()  # the chip, its bus and the worker share one fake time line
    bus.attach(ADDRESS, Sht3xDevice(temperature=21.5, humidity=40.0, clock=clock))
    lock = threading.Lock()
    got: list[Measurement] = []

    def opener(s: ResolvedSensor):
        return Sht3x(I2CDevice(bus, ADDRESS, lock, clock), Sht3xOptions()), lambda: None

    worker = SensorWorker(sensor, opener, got.extend, clock)
    worker.start()
    try:
        assert wait_until(lambda: len(got) >= 4, 5)
        bus.vanish(ADDRESS)
        assert wait_until(lambda: worker.health().reopens >= 1, 10)
        bus.fail_next(ADDRESS, 1, errno.ETIMEDOUT)  # and one bus timeout on the way back
        bus.reappear(ADDRESS)
        before = len(got)
        assert wait_until(lambda: len(got) > before + 4, 10)
    finally:
        worker.stop()
        worker.join(5)
    health = worker.health()
    assert health.resets >= 1 and health.reopens >= 1 and health.errors_total >= 4
    temperatures = {round(m.value, 1) for m in got if m.quantity == "temperature"}
    assert temperatures == {21.5}, "no value is invented while the sensor is away"
