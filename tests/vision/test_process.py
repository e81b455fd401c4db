"""The process boundary: the supervisor restarts a dying counter, replaces a hung one and one
that sends anything its camera's schema does not allow. Every counter here is forked by a
real zygote (``agent.vision.zygote``), with a stand-in entry point from
``tests/vision/children.py`` or the real counter."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from agent.clock import Clock
from agent.config.camera import CameraConfig
from agent.vision.process import CounterSupervisor, hang_after_s, to_measurements, unit_of
from agent.vision.record import Kind, Record
from agent.vision.zygote import Zygote
from tests.clock import FakeClock
from tests.mqtt_broker import Broker, wait_until
from tests.vision import children
from tests.vision.streams import INT8_MODEL, REPO, vtest_frames, write_clip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("proc") / "vtest80.avi", vtest_frames(0, 80), 10)


def camera(source: Path | str, **extra: object) -> CameraConfig:
    return CameraConfig.model_validate({"source": str(source), "model": str(INT8_MODEL),
                                        **extra})


@pytest.fixture
def zygote() -> Iterator[Callable[[str], Zygote]]:
    """Zygotes forking a stand-in of tests/vision/children.py by name, closed afterwards."""
    started: list[Zygote] = []

    def start(entry: str) -> Zygote:
        started.append(Zygote(f"tests.vision.children:{entry}"))
        return started[-1]

    yield start
    for each in started:
        each.close()


def collect(supervisor: CounterSupervisor, until, timeout_s: float) -> list:
    got: list = []

    def done() -> bool:
        got.extend(supervisor.drain())
        return until(got)

    assert wait_until(done, timeout_s, 0.1), [(m.quantity, m.value) for m in got]
    return got


def test_a_dying_counter_is_restarted_with_growing_waits(zygote):
    clock = FakeClock()  # the backoff passes in fake time; the children are real
    supervisor = CounterSupervisor("cam", camera("/dev/null"), clock=clock, backoff_min_s=2,
                                   backoff_max_s=8, zygote=zygote("dying"))
    supervisor.start()
    try:
        starts = collect(supervisor, lambda got: len(got) >= 5, 30)
    finally:
        supervisor.stop()
    assert len(starts) >= 5
    # The waits double from backoff_min_s and stop at backoff_max_s (the child lives too
    # briefly to count as stable, so they never fall back).
    assert clock.slept[:4] == [2, 4, 8, 8]
    assert supervisor.restarts >= 4
    health = {m.quantity: m.value for m in supervisor.health(0, 0.0)}
    assert health == {"up": 0.0, "source_up": 0.0, "restarts_total": supervisor.restarts,
                      "hangs_total": 0.0, "records_rejected_total": 0.0}


def test_a_counter_stopped_with_the_daemon_is_not_restarted_but_one_stopped_alone_is(
        zygote, caplog: pytest.LogCaptureFixture) -> None:
    """systemd and Ctrl-C signal every process at once: the counter may leave (exit 0)
    before the daemon's own stop reaches its supervisor."""
    supervisor = CounterSupervisor("cam", camera("/dev/null"), backoff_min_s=0.2,
                                   zygote=zygote("obedient"))
    def listening() -> bool:  # its source_up says it has its SIGTERM handler
        return {m.quantity: m.value for m in supervisor.health(0, 0.0)}["source_up"] == 1

    supervisor.start()
    assert wait_until(listening, 10)
    os.kill(supervisor._process.pid, signal.SIGTERM)  # type: ignore[union-attr]
    # the counter alone (someone, not the daemon): it is restarted
    assert wait_until(lambda: supervisor.restarts == 1 and listening(), 10)
    caplog.clear()
    os.kill(supervisor._process.pid, signal.SIGTERM)  # type: ignore[union-attr]
    time.sleep(0.3)  # the counter is gone first ...
    supervisor.stop()  # ... then the daemon's stop arrives
    assert supervisor.restarts == 1, [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if "exited with code" in r.getMessage()]


def test_the_hang_bound_follows_the_interval() -> None:
    assert hang_after_s(60) == 150 and hang_after_s(1) == 32
    assert CounterSupervisor("cam", camera("/dev/null", interval_s=10)).hang_s == 50


def test_a_counter_alive_but_silent_is_killed_restarted_and_counted_as_a_hang(zygote):
    clock = FakeClock()
    supervisor = CounterSupervisor("cam", camera("/dev/null", interval_s=10), clock=clock,
                                   zygote=zygote("lingering"))
    supervisor.start()
    try:
        assert wait_until(lambda: supervisor.alive, 20)
        assert supervisor._process is not None
        stuck = supervisor._process.pid
        os.kill(stuck, signal.SIGSTOP)  # stuck in a read: alive, and sending nothing
        clock.now += supervisor.hang_s + 1  # time passes in silence
        assert wait_until(lambda: supervisor.hangs == 1 and supervisor.alive
                          and supervisor._process is not None
                          and supervisor._process.pid != stuck, 20), "a fresh counter"
    finally:
        supervisor.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(stuck, 0)  # the hung one was killed (and reaped)
    health = {m.quantity: m.value for m in supervisor.health(0, 0.0)}
    assert health["hangs_total"] == 1.0 and health["restarts_total"] == 1.0
    assert clock.slept == [1.0], "restarted after the policy's first wait"


def test_a_finished_video_is_not_restarted_and_meta_comes_from_the_daemon(zygote):
    supervisor = CounterSupervisor("cam", camera("/dev/null", suppress_below=2),
                                   zygote=zygote("finishing"))
    supervisor.start()
    assert supervisor._thread.join(20), "a finished counter is not restarted"
    got = supervisor.drain()
    assert [(m.quantity, m.value, m.unit) for m in got] == [
        ("frames", 5.0, "{frame}"), ("occupancy_max", 4.0, "{person}")]
    assert got[0].meta == (("suppress_below", 2.0),) and got[1].meta == ()
    assert supervisor.rejected == 0 and supervisor.restarts == 0


@pytest.mark.parametrize("leak", list(children.LEAKS))
def test_anything_outside_the_schema_is_refused_counted_and_the_counter_replaced(
        leak: str, zygote: Callable[[str], Zygote]) -> None:
    # The stand-in sends the leak its camera id names.
    supervisor = CounterSupervisor(leak, camera("/dev/null"), backoff_min_s=30,
                                   zygote=zygote("leaky"))
    supervisor.start()
    try:
        assert wait_until(lambda: supervisor.restarts == 1, 20)
    finally:
        supervisor.stop()
    frames = [m.value for m in supervisor.drain() if m.quantity == "frames"]
    assert frames == [2.0], "the record before the leak arrived; nothing after it"
    health = {m.quantity: m.value for m in supervisor.health(0, 0.0)}
    assert health["records_rejected_total"] == 1.0 and health["restarts_total"] == 1.0


def test_measurements_and_units() -> None:
    alert = Record(Kind.ALERT, 5000, (("zone_a_density_alert", 1.0),))
    assert [m.unit for m in to_measurements("c", alert, 0.0)] == ["1"]
    assert to_measurements("c", Record(Kind.STATUS, 5000, (("source_up", 1.0),)), 0.0) == []
    assert [m.window_s for m in to_measurements("c", alert, 0.0, interval_s=60)] == [None]
    grid = Record(Kind.INTERVAL, 1_795_808_460_000, (("frames", 600.0), ("line_a_in", 3.0)))
    assert {m.window_s for m in to_measurements("c", grid, 0.0, interval_s=60)} == {60.0}
    partial = Record(Kind.INTERVAL, 1_795_808_443_000, (("frames", 100.0),))
    assert to_measurements("c", partial, 0.0, interval_s=60)[0].window_s == 43.0, \
        "the last interval at a stop: from its start on the grid"
    units = {q: unit_of(q) for q in (
        "line_door_in", "line_door_out", "zone_kerb_occupancy_mean", "zone_kerb_occupancy_max",
        "zone_kerb_density_mean", "zone_kerb_density_max", "zone_kerb_density_alert",
        "occupancy_mean", "occupancy_max", "fps", "inference_ms_p50", "inference_ms_p95",
        "frames", "frames_inferred", "frames_dropped_total", "source_reconnects_total")}
    assert units == {
        "line_door_in": "{person}", "line_door_out": "{person}",
        "zone_kerb_occupancy_mean": "{person}", "zone_kerb_occupancy_max": "{person}",
        "zone_kerb_density_mean": "{person}/m2", "zone_kerb_density_max": "{person}/m2",
        "zone_kerb_density_alert": "1", "occupancy_mean": "{person}",
        "occupancy_max": "{person}", "fps": "/s", "inference_ms_p50": "ms",
        "inference_ms_p95": "ms", "frames": "{frame}", "frames_inferred": "{frame}",
        "frames_dropped_total": "{frame}", "source_reconnects_total": "1"}


def test_the_real_counter_sends_intervals_and_alerts_and_survives_kill_9(clip: Path):
    config = camera(clip, interval_s=1, suppress_below=0, lines=[
        {"name": "path", "x1": 230, "y1": 340, "x2": 230, "y2": 170}], zones=[
        {"name": "square", "polygon": [[0, 0], [768, 0], [768, 576], [0, 576]],
         "area_m2": 1.0, "density_on": 3.0, "density_off": 2.0}])
    supervisor = CounterSupervisor("cam", config, backoff_min_s=0.2)
    supervisor.start()
    try:
        got = collect(supervisor, lambda g: sum(m.quantity == "frames" for m in g) >= 3, 60)
        assert wait_until(lambda: supervisor.health(0, 0.0)[1].value == 1.0, 5), "source_up"
        limits = Path(f"/proc/{supervisor._process.pid}/limits").read_text()
        assert re.search(r"Max core file size\s+0\s+0", limits), "a core dump holds frames"
        os.kill(supervisor._process.pid, signal.SIGKILL)
        assert wait_until(lambda: supervisor.restarts == 1, 10)
        after = collect(supervisor, lambda g: sum(m.quantity == "frames" for m in g) >= 2, 60)
    finally:
        supervisor.stop()
    assert not supervisor.alive and supervisor.rejected == 0
    names = [m.quantity for m in got]
    alert = names.index("zone_square_density_alert")
    assert got[alert].value == 1.0
    closing = next(i for i, m in enumerate(got)
                   if m.quantity == "frames" and m.utc_ms > got[alert].utc_ms)
    assert alert < closing, "the alert was sent before its interval closed"
    frames = [m for m in got + after if m.quantity == "frames"]
    assert all(m.utc_ms % 1000 == 0 for m in frames[:-1]), "intervals end on whole seconds"
    assert all(m.value <= 11 for m in frames)
    full = {m.quantity: m.unit for m in got if m.utc_ms == frames[1].utc_ms}
    assert {"line_path_in": "{person}", "zone_square_occupancy_mean": "{person}",
            "zone_square_density_max": "{person}/m2", "fps": "/s", "inference_ms_p95": "ms",
            "frames_dropped_total": "{frame}", "source_reconnects_total": "1"}.items() \
        <= full.items()


STEPPING_SITE = """
import os
import time

_steps = [(float(at), int(ms)) for at, ms in
          (step.split(":") for step in os.environ["LOKAALMETEN_TEST_WALL_STEPS"].split(","))]
_real_ns = time.time_ns


def _stepped_ns() -> int:
    now = time.monotonic()
    return _real_ns() + sum(ms for at, ms in _steps if now >= at) * 1_000_000


time.time_ns = _stepped_ns
time.time = lambda: _stepped_ns() / 1e9
"""


class SteppingClock(Clock):
    """The system's clocks, the wall clock stepped by ``steps`` (monotonic time → ms)."""

    def __init__(self, steps: dict[float, int]) -> None:
        self.steps = steps

    def wall_ms(self) -> int:
        now = self.monotonic()
        return super().wall_ms() + sum(ms for at, ms in self.steps.items() if now >= at)


def test_the_real_counter_follows_wall_clock_steps_without_a_restart(
        clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Both processes see one stepping wall clock: the counter through a sitecustomize its
    # zygote loads at start (the monotonic clock is system-wide), the daemon's side here.
    start = time.monotonic()
    steps = {start + 5: 3_600_000, start + 10: -3_605_000}  # an hour on, then back and 5 s
    (tmp_path / "sitecustomize.py").write_text(STEPPING_SITE)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("LOKAALMETEN_TEST_WALL_STEPS",
                       ",".join(f"{at}:{ms}" for at, ms in steps.items()))
    zygote = Zygote()
    supervisor = CounterSupervisor("cam", camera(clip, interval_s=2, suppress_below=0),
                                   clock=SteppingClock(steps), zygote=zygote)
    supervisor.start()
    try:
        got = collect(supervisor, lambda _: time.monotonic() > start + 20, 40)
    finally:
        supervisor.stop()
        zygote.close()
    assert supervisor.restarts == 0 and supervisor.rejected == 0, "the counter kept its life"
    ends = [m.utc_ms for m in got if m.quantity == "frames"]
    jumps = [b - a for a, b in pairwise(ends)]
    on = next(k for k, j in enumerate(jumps) if j > 3_500_000) + 1
    back = next(k for k, j in enumerate(jumps) if j < -3_500_000) + 1
    assert on < back, ends
    assert all(end % 2000 == 0 for end in ends[:on]), "on the grid before the first step"
    assert all(end % 2000 == 0 for end in ends[on + 1:back]), "on the new grid after it"
    assert len(ends) - back >= 3 and all(end % 2000 == 0 for end in ends[back + 1:]), ends


def test_the_counter_process_leaves_when_the_daemon_is_killed(clip: Path, tmp_path: Path):
    script = tmp_path / "daemon.py"
    script.write_text(textwrap.dedent(f"""
        import time
        from agent.config.camera import CameraConfig
        from agent.vision.process import CounterSupervisor

        if __name__ == "__main__":
            config = CameraConfig(source={str(clip)!r}, model={str(INT8_MODEL)!r})
            supervisor = CounterSupervisor("cam", config)
            supervisor.start()
            while not supervisor.alive:
                time.sleep(0.05)
            print(supervisor._process.pid, flush=True)
            time.sleep(60)
        """))
    daemon = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        child = int(daemon.stdout.readline())
        time.sleep(2.0)  # let it load the model and count
        assert _running(child)
        daemon.kill()
        daemon.wait(5)
        assert wait_until(lambda: not _running(child), 10), "orphaned counter kept running"
    finally:
        daemon.kill()
        daemon.wait(5)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_daemon_without_cameras_never_imports_opencv(tmp_path: Path, broker: Broker):
    """Importing agent.app and running a sensor-only config leaves cv2/onnxruntime unloaded."""
    script = textwrap.dedent(f"""
        import json, sys, threading, time
        from pathlib import Path
        from agent.app import Agent
        from agent.plan import plan
        from agent.cli._common import simulated_buses
        from agent.config import parse_config

        config = parse_config('''
        device_id = "no-camera"
        [mqtt]
        host = "{broker.host}"
        port = {broker.port}
        [storage]
        path = "{tmp_path / 'outbox.sqlite'}"
        [sensors.pm]
        model = "sds011"
        port = "/dev/ttyUSB0"
        interval_s = 1
        ''', "test")
        agent = Agent(plan(config, "test"), simulated_buses(config, Path("{tmp_path}")))
        runner = threading.Thread(target=agent.run)
        runner.start()
        time.sleep(2.5)
        agent.request_stop()
        runner.join(20)
        heavy = ("cv2", "onnxruntime", "scipy", "agent.vision.detector",
                 "agent.vision.source", "agent.vision.tracker", "agent.vision.pipeline")
        print(json.dumps({{name: name in sys.modules for name in heavy}}))
        """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)},
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert not any(loaded.values()), loaded
