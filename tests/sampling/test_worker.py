"""The sensor worker against a real SDS011 emulator on a pseudo-terminal.

Covers isolation (a hanging sensor never stalls another), failure escalation
(retry, reset, reopen), a port that vanishes and returns, duty cycling, and
a wall-clock step that must not disturb the schedule.

The worker runs on a :class:`tests.clock.FakeClock`: its schedule, warm-up,
windows and restart backoff pass in fake time (every wait returns at once, time
moved on by exactly that wait), while the serial exchange with the emulator is real.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from agent.bus.serial import open_serial
from agent.config.profiles import all_profiles
from agent.config.sensors import ResolvedSensor, SensorConfig
from agent.emulators.sds011 import Sds011Device
from agent.emulators.serial_pty import Fault, PtySerialEmulator
from agent.errors import BusTimeout
from agent.models import Measurement, Quality, Reading
from agent.sampling.worker import MIN_SLEEP_S, SensorWorker
from agent.sensors.sds011 import Sds011, Sds011Options
from tests.clock import FakeClock
from tests.mqtt_broker import wait_until


def resolved(sensor_id: str = "pm", interval_s: float = 0.2, window_s: float | None = None,
             warmup_s: float = 0.0, wake_lead_s: float = 0.0, **config: object
             ) -> ResolvedSensor:
    profile = all_profiles()["sds011"].model_copy(
        update={"min_interval_s": 0.05, "wake_lead_s": wake_lead_s})
    settings = SensorConfig.model_validate(
        {"model": "sds011", "port": "emulated", "interval_s": interval_s,
         "window_s": window_s or interval_s, "warmup_s": warmup_s, "timeout_s": 0.3, **config},
        context={"profiles": {"sds011": profile}})
    return ResolvedSensor.resolve(sensor_id, settings, profile)


class Collector:
    def __init__(self) -> None:
        self.items: list[Measurement] = []
        self.lock = threading.Lock()

    def __call__(self, batch: list[Measurement]) -> None:
        with self.lock:
            self.items.extend(batch)

    def of(self, quantity: str) -> list[Measurement]:
        with self.lock:
            return [m for m in self.items if m.quantity == quantity]


@pytest.fixture
def device() -> Sds011Device:
    return Sds011Device(pm2_5=12.3, pm10=45.6)


@pytest.fixture
def emulator(device: Sds011Device) -> Iterator[PtySerialEmulator]:
    with PtySerialEmulator(device) as emu:
        yield emu


def opener_for(emulator: PtySerialEmulator, opens: list[int] | None = None,
               reply_timeout_s: float = 0.3):
    def open_sensor(sensor: ResolvedSensor):
        link = open_serial(emulator.port, 9600, sensor.config.timeout_s)
        if opens is not None:
            opens.append(1)
        return Sds011(link, Sds011Options(reply_timeout_s=reply_timeout_s)), link.close
    return open_sensor


def run_worker(sensor: ResolvedSensor, opener, sink,
               clock: FakeClock | None = None) -> SensorWorker:
    worker = SensorWorker(sensor, opener, sink, clock or FakeClock())
    worker.start()
    return worker


def test_samples_arrive_with_units_and_values(emulator: PtySerialEmulator) -> None:
    sink = Collector()
    worker = run_worker(resolved(), opener_for(emulator), sink)
    try:
        assert wait_until(lambda: len(sink.of("pm2_5")) >= 3, 5)
    finally:
        worker.stop()
        worker.join(5)
    first = sink.of("pm2_5")[0]
    assert (first.value, first.unit, first.sensor_id, first.stats) == (12.3, "ug/m3", "pm", None)
    assert sink.of("pm10")[0].value == 45.6
    assert worker.health().state == "stopped"
    identity = dict(worker.health().identity)
    assert set(identity) == {"firmware", "device_id"}, "it said who it is when opened"


def test_a_sensor_that_cannot_say_who_it_is_is_sampled_all_the_same(
        emulator: PtySerialEmulator) -> None:
    """The identity is asked before start (some sensors answer only when idle) and after;
    a device that answers neither time is no failure."""
    class Nameless(Sds011):
        def identify(self) -> dict[str, str]:
            raise BusTimeout("no reply to the firmware query")

    def open_sensor(sensor: ResolvedSensor):
        link = open_serial(emulator.port, 9600, sensor.config.timeout_s)
        return Nameless(link, Sds011Options(reply_timeout_s=0.3)), link.close

    sink = Collector()
    worker = run_worker(resolved(), open_sensor, sink)
    try:
        assert wait_until(lambda: len(sink.of("pm2_5")) >= 2, 5)
    finally:
        worker.stop()
        worker.join(5)
    assert worker.health().identity == ()
    assert worker.health().errors_total == 0


def test_aggregation_window_reports_mean_min_max_n(emulator: PtySerialEmulator,
                                                   device: Sds011Device) -> None:
    sink = Collector()
    worker = run_worker(resolved(interval_s=0.1, window_s=0.6), opener_for(emulator), sink)
    try:
        assert wait_until(lambda: len(sink.of("pm2_5")) >= 2, 5)
    finally:
        worker.stop()
        worker.join(5)
    full = sink.of("pm2_5")[0]
    assert full.stats is not None and full.stats.count == 6, "0.6 s of slots 0.1 s apart"
    *whole, last = sink.of("pm2_5")
    assert all(m.stats is not None and m.stats.window_s == 0.6 for m in whole)
    assert last.stats is not None and last.stats.window_s <= 0.6, "the stop's partial window"
    # It spans from the last full window's end (its close, on the fake clock) to the stop.
    assert last.stats.window_s == pytest.approx(
        min(0.6, last.monotonic_s - whole[-1].monotonic_s), abs=0.01)
    assert full.stats.minimum == full.stats.maximum == 12.3
    assert full.value == pytest.approx(12.3)


def test_bad_checksum_is_retried_flagged_and_never_published(emulator: PtySerialEmulator) -> None:
    sink = Collector()
    worker = run_worker(resolved(interval_s=0.3), opener_for(emulator), sink)
    try:
        assert wait_until(lambda: len(sink.of("pm2_5")) >= 1, 5)
        emulator.inject(Fault.BAD_CHECKSUM)
        assert wait_until(lambda: any(Quality.RETRIED in m.flags for m in sink.of("pm2_5")), 5)
    finally:
        worker.stop()
        worker.join(5)
    assert {m.value for m in sink.of("pm2_5")} == {12.3}
    health = worker.health()
    assert health.frames_rejected == 1 and health.errors_total == 1
    assert health.consecutive_failures == 0


@pytest.mark.slow  # a fault run: 12 silent replies through a pseudo-terminal in real time
def test_silence_escalates_to_reset_then_reopen_then_recovers(
        emulator: PtySerialEmulator) -> None:
    sink = Collector()
    opens: list[int] = []
    sensor = resolved(interval_s=0.1, reset_after_failures=2, reopen_after_failures=4,
                      timeout_s=0.15)
    worker = run_worker(sensor, opener_for(emulator, opens, reply_timeout_s=0.15), sink)
    try:
        assert wait_until(lambda: len(sink.of("pm2_5")) >= 1, 5)
        # Four failures of read + retry, the reset's wake between them and the reopened
        # sensor's first wake: 10 silent replies reach the reopen; 2 more for good measure.
        emulator.inject(Fault.SILENCE, 12)
        assert wait_until(lambda: worker.health().reopens >= 1, 15)
        assert wait_until(lambda: worker.health().state == "ok", 20)
        before = len(sink.of("pm2_5"))
        assert wait_until(lambda: len(sink.of("pm2_5")) > before, 5)
    finally:
        worker.stop()
        worker.join(5)
    health = worker.health()
    assert health.resets >= 1 and health.reopens >= 1 and len(opens) >= 2
    assert health.errors_total >= 4


def test_port_vanishing_and_returning_is_picked_up(emulator: PtySerialEmulator) -> None:
    sink = Collector()
    worker = run_worker(resolved(interval_s=0.1, reset_after_failures=1,
                                 reopen_after_failures=2), opener_for(emulator), sink)
    try:
        assert wait_until(lambda: len(sink.of("pm2_5")) >= 1, 5)
        emulator.vanish()
        assert wait_until(lambda: worker.health().consecutive_failures >= 3, 10)
        emulator.reappear()
        count = len(sink.of("pm2_5"))
        assert wait_until(lambda: len(sink.of("pm2_5")) > count + 2, 15)
    finally:
        worker.stop()
        worker.join(5)
    assert worker.health().reopens >= 1


class HangingDriver:
    """A driver whose read blocks until released: a wedged bus or a driver bug."""

    model: ClassVar[str] = "sds011"
    quantities: ClassVar[tuple[str, ...]] = ("pm2_5", "pm10")

    def __init__(self) -> None:
        self.release = threading.Event()
        self.frames_rejected = 0
        self.bytes_discarded = 0

    def start(self) -> None:
        pass

    def read(self) -> list[Reading]:
        self.release.wait()
        return [Reading("pm2_5", 1.0)]

    def reset(self) -> None:
        pass

    def stop(self) -> None:
        pass


def test_a_hanging_sensor_does_not_stall_the_others(emulator: PtySerialEmulator) -> None:
    sink = Collector()
    hanging = HangingDriver()
    clock = FakeClock()  # one time line for both
    stuck = run_worker(resolved("stuck", interval_s=0.1), lambda s: (hanging, lambda: None),
                       sink, clock)
    healthy = run_worker(resolved("good", interval_s=0.1), opener_for(emulator), sink, clock)
    try:
        assert wait_until(lambda: len([m for m in sink.of("pm2_5")
                                       if m.sensor_id == "good"]) >= 10, 10)
        beat = stuck.health().heartbeat_monotonic
        assert clock.monotonic() - beat > 0.5, "the stuck worker's heartbeat goes stale"
    finally:
        hanging.release.set()
        for w in (stuck, healthy):
            w.stop()
            w.join(5)


def test_duty_cycling_sleeps_between_readings_and_wakes_ahead(
        emulator: PtySerialEmulator, device: Sds011Device) -> None:
    sink = Collector()
    # Long enough to sleep in: costs nothing on the fake clock.
    sensor = resolved(interval_s=MIN_SLEEP_S + 30, wake_lead_s=20, warmup_s=15)
    worker = run_worker(sensor, opener_for(emulator), sink)
    try:
        assert wait_until(lambda: len(sink.of("pm2_5")) >= 3, 10)
    finally:
        worker.stop()
        worker.join(5)
    assert device.sleep_count >= 3 and device.wake_count >= 2  # the first wake found it awake
    assert device.commands_ignored_asleep == 0, "every query came after a wake"
    assert device.sleeping, "stop() leaves the laser off"
    assert all(Quality.WARMING_UP not in m.flags for m in sink.of("pm2_5")[1:]), \
        "readings come after the wake lead, so they are settled"


def test_wall_clock_step_does_not_disturb_the_schedule(emulator: PtySerialEmulator) -> None:
    clock = FakeClock()

    class Stepping(Collector):
        """NTP steps the wall clock an hour forward after the 4th sample, two hours back
        after the 8th."""

        def __call__(self, batch: list[Measurement]) -> None:
            super().__call__(batch)
            count = len(self.of("pm2_5"))
            clock.wall_offset_ms = {4: 3_600_000, 8: -3_600_000}.get(count,
                                                                    clock.wall_offset_ms)

    sink = Stepping()
    worker = run_worker(resolved(interval_s=0.2), opener_for(emulator), sink, clock)
    try:
        assert wait_until(lambda: len(sink.of("pm2_5")) >= 12, 5)
    finally:
        worker.stop()
        worker.join(5)
    samples = sink.of("pm2_5")[:12]
    gaps = [b.monotonic_s - a.monotonic_s for a, b in itertools.pairwise(samples)]
    assert gaps == pytest.approx([0.2] * 11), gaps  # never bunched nor skipped
    assert worker.health().missed_slots == 0
    stamps = [m.utc_ms for m in samples]
    assert max(stamps) - min(stamps) > 3_000_000, "time stamps follow the stepped wall clock"


def test_an_unexpected_crash_is_counted_and_the_worker_restarted(
        emulator: PtySerialEmulator, caplog: pytest.LogCaptureFixture) -> None:
    """E.g. an adapter whose library raises something untranslated while opening."""
    real = opener_for(emulator)
    calls = itertools.count()

    def flaky_open(sensor: ResolvedSensor):
        if next(calls) == 0:
            raise KeyError("bug in a driver's open (injected)")
        return real(sensor)

    sink = Collector()
    worker = run_worker(resolved(interval_s=0.1), flaky_open, sink)
    try:
        assert wait_until(lambda: len(sink.of("pm2_5")) >= 2, 10), "restarted and sampling"
        assert not worker.join(0), "still running"
    finally:
        worker.stop()
        worker.join(5)
    assert worker.health().crashes == 1
    assert any(r.exc_info and "sensor-pm crashed" in r.message for r in caplog.records)
