"""The sampler: one worker thread per sensor, all feeding one queue of measurements."""

from __future__ import annotations

import logging

from agent.config.sensors import ResolvedSensor
from agent.models import Measurement, MeasurementQueue
from agent.sampling.worker import Clock, Opener, SensorHealth, SensorWorker

__all__ = ["Sampler", "SensorHealth"]

log = logging.getLogger(__name__)


class Sampler:
    """Starts and stops the sensor workers; measurements arrive on :attr:`output`."""

    def __init__(self, sensors: list[ResolvedSensor], opener: Opener,
                 clock: Clock | None = None) -> None:
        self.output = MeasurementQueue()
        self._workers = [SensorWorker(sensor, opener, self.output.put, clock)
                         for sensor in sensors]

    def start(self) -> None:
        for worker in self._workers:
            worker.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop all workers; each emits its partial window and puts its sensor to sleep."""
        for worker in self._workers:
            worker.stop()
        for worker in self._workers:
            if not worker.join(timeout_s):
                log.warning("sensor %s did not stop within %.0f s (hung in a read?)",
                            worker.sensor.sensor_id, timeout_s)

    def health(self) -> list[SensorHealth]:
        return [worker.health() for worker in self._workers]

    def drain(self) -> list[Measurement]:
        """Everything produced since the last call, in production order."""
        return self.output.drain()
