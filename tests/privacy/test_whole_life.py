"""The whole daemon counts a video with a canary in it; nothing of the picture gets out.

The daemon (``lokaalmeten run``, logging at DEBUG) runs under ``strace -f``
from its first instruction, counting a clip whose frames carry the canary of
``tests/privacy/canary.py``, from a file, from a local MJPEG camera and from a
local RTSP camera (GStreamer's RTSP server, RTP/JPEG over TCP, asking for a
password, which must not appear in anything the box writes either). Then
four independent looks:

1. **System calls of the counter process over its whole life**, from the
   zygote's fork on (imports included): it never attempts to open a file for
   writing, change the file system, start a process or a program, open a
   socket other than a TCP one to its camera, connect anywhere else, listen,
   map a file shared and writable, or write more than a log line or a record
   at a time (``tests/privacy/syscalls.py``). Denied attempts count: the tests
   do not rely on the sandbox to notice a leak. The zygote itself, which lives
   as long as the daemon, never writes a file, opens a socket, starts a
   program or loads counter code, a camera or an image library.
2. **The canary** is searched, raw, as hex and as base64, in everything the
   box leaves: every MQTT message, the outbox and its WAL (copied while the
   daemon runs, and again after), the DEBUG log, $HOME, and every file new in
   /tmp and /dev/shm.
3. **The log** has no line shaped like image data (``tests/privacy/logs.py``).
4. **The boundary**: every camera quantity that reached MQTT is in the set the
   configuration allows, and the daemon rejected nothing (a leak that sends
   pixel values or coordinates as numbers is refused there and shows up as
   ``records_rejected_total``).

The mutation script ``scripts/plant-leaks`` plants a leak of each kind into a
throwaway copy of the repository and checks that these tests fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.fast_box import fast_head
from tests.mqtt_broker import Broker, Recorder, wait_until
from tests.privacy import canary
from tests.privacy.logs import suspicious_lines
from tests.privacy.syscalls import TRACED, Allowed, Trace, violations, zygote_violations
from tests.vision.streams import INT8_MODEL, REPO, MjpegServer, RtspServer, vtest_frames

pytestmark = pytest.mark.slow
CLIP_FRAMES = (100, 160)
"""vtest frames with five to seven people walking, several crossing the line."""


def _require_strace() -> str:
    path = shutil.which("strace")
    if path is None:  # scripts/test installs it; never skip silently in CI
        pytest.fail("strace is not installed (apt-get install strace)")
    return path


@dataclass
class Run:
    log: str
    trace: Trace
    recorder: Recorder
    captured: dict[str, list[str]]
    """Canary hits per file searched (must stay empty)."""
    searched: int


def camera_config(source: str, loop: bool) -> str:
    return 'log_level = "DEBUG"\n' + fast_head("privacy-box", 1) + f"""
[cameras.street]
source = "{source}"
model = "{INT8_MODEL}"
interval_s = 1
fps_cap = 25
loop = {str(loop).lower()}
[[cameras.street.lines]]
name = "path"
x1 = 230
y1 = 340
x2 = 230
y2 = 170
[[cameras.street.zones]]
name = "square"
polygon = [[0, 0], [768, 0], [768, 576], [0, 576]]
"""


def _daemon_pid(strace_pid: int) -> int | None:
    try:
        children = Path(f"/proc/{strace_pid}/task/{strace_pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _snapshot(state: Path, into: Path) -> None:
    """Copy the outbox files (the WAL disappears when the daemon closes the database)."""
    into.mkdir(parents=True, exist_ok=True)
    for path in state.glob("*"):
        if path.is_file():
            shutil.copy(path, into / path.name)


def run_daemon(tmp_path: Path, broker: Broker, source: str, *, loop: bool,
               seconds: float) -> Run:
    strace = _require_strace()
    started = time.time() - 1
    home, state = tmp_path / "home", tmp_path / "state"
    home.mkdir()
    config = tmp_path / "agent.toml"
    text = camera_config(source, loop).replace(
        "[mqtt]\n", f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n').replace(
        "[storage]\n", f'[storage]\npath = "{state / "outbox.sqlite"}"\n')
    config.write_text(text)
    log = tmp_path / "agent.log"
    trace_file = tmp_path / "trace.txt"
    recorder = Recorder(broker).start()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(home),
           "XDG_CACHE_HOME": str(home / ".cache"), "PYTHONDONTWRITEBYTECODE": "1"}
    with log.open("wb") as out:
        tracer = subprocess.Popen(
            [strace, "-f", "-qq", "-s", "200", "-e", f"trace={TRACED}", "-e", "signal=none",
             "-o", str(trace_file), sys.executable, "-m", "agent", "run", "--config",
             str(config)], stdout=out, stderr=out, env=env)
    try:
        wait_until(lambda: tracer.poll() is not None, seconds * 0.6)
        _snapshot(state, tmp_path / "state-while-running")
        wait_until(lambda: tracer.poll() is not None, seconds * 0.4)
        daemon = _daemon_pid(tracer.pid)
        if daemon is not None:
            os.kill(daemon, signal.SIGTERM)
        tracer.wait(180)  # strace slows a stop a lot on a busy machine; only then waited
    finally:
        if tracer.poll() is None:
            tracer.kill()
        recorder.stop()
    _snapshot(state, tmp_path / "state-after")
    dump = tmp_path / "mqtt.bin"
    dump.write_bytes(b"\n".join(m.topic.encode() + b" " + m.payload for m in recorder.messages))
    shm = Path("/dev/shm")
    files = [*canary.files_under(tmp_path / "state-while-running", tmp_path / "state-after",
                                 state, home, log, dump),
             *(path for path in canary.files_under(Path("/tmp"), shm, newer_than=started)
               if str(path) != source  # the input clip holds the canary by design
               and not _other_pytest_run(path, tmp_path))]
    return Run(log.read_text(errors="replace"), Trace.parse(trace_file), recorder,
               canary.search_files(files), len(files))


def _other_pytest_run(path: Path, tmp_path: Path) -> bool:
    """A file of another pytest session running at the same time (a developer's, a
    helper's): its test data is not ours to judge. This run's own directory is searched."""
    own = tmp_path.parent  # /tmp/pytest-of-<user>/pytest-<N>
    if not own.parent.name.startswith("pytest-of-"):
        return False  # a --basetemp of its own: nothing to tell apart
    return path.is_relative_to(own.parent) and not path.is_relative_to(own)


def check(run: Run, allowed: Allowed) -> None:
    zygotes = run.trace.zygotes()
    assert zygotes, "the trace shows no zygote:\n" + run.log[-3000:]
    for zygote in zygotes:
        problems = zygote_violations(zygote)
        assert problems == [], f"zygote {zygote.pid}:\n" + "\n".join(problems[:30])
    counters = run.trace.counters()
    assert counters, "the trace shows no counter process:\n" + run.log[-3000:]
    for process in counters:  # attempts count, also those the sandbox denied
        problems = violations(process, allowed)
        assert problems == [], f"counter {process.pid}:\n" + "\n".join(problems[:30])
    # A counter restarted just before shutdown may not have got as far as its model;
    # the first one must have, or the trace saw nothing.
    assert any(c.name == "openat" and ".onnx" in c.args for c in counters[0].calls), \
        "the trace must show the counter loading its model (a blind trace?)"
    assert run.captured == {}, f"the canary left the counter: {run.captured}"
    assert run.searched >= 4, "the canary search looked at the log, MQTT and the outbox"
    lines = suspicious_lines(run.log)
    assert lines == [], "\n".join(lines[:10])
    camera = [m for m in run.recorder.measurements() if m["sensor"] == "street"]
    rejected = [m["value"] for m in camera if m["quantity"] == "records_rejected_total"]
    assert rejected, "the heartbeat reports the boundary:\n" + run.log[-3000:]
    assert max(rejected) == 0 and "refused a record" not in run.log, \
        f"the boundary rejected records: {rejected}"
    assert any(m["quantity"] == "frames" and m["value"] > 0 for m in camera), \
        "the daemon counted and published:\n" + run.log[-3000:]


@pytest.fixture
def painted() -> list:
    frames = [canary.paint(f) for f in vtest_frames(*CLIP_FRAMES)]
    assert canary.find_in(frames[0].tobytes()), "the canary search finds a painted frame"
    return frames


def test_counting_a_file_leaks_nothing(tmp_path: Path, broker: Broker, painted: list) -> None:
    clip = canary.write_canary_clip(tmp_path / "canary.mkv", vtest_frames(*CLIP_FRAMES), 25)
    run = run_daemon(tmp_path, broker, str(clip), loop=True, seconds=14)
    check(run, Allowed())


@pytest.fixture
def camera(painted: list) -> Iterator[MjpegServer]:
    server = MjpegServer(painted, fps=25).start()
    yield server
    server.stop()


def test_counting_an_mjpeg_camera_leaks_nothing(tmp_path: Path, broker: Broker,
                                                camera: MjpegServer) -> None:
    port = int(camera.url.split(":")[2].split("/")[0])
    run = run_daemon(tmp_path, broker, camera.url, loop=True, seconds=14)
    check(run, Allowed(camera=("127.0.0.1", port)))


CAMERA_PASSWORD = "Vq7-p@ss:w0rd"
"""The RTSP camera's password (Digest): in the configuration, and nowhere the box writes
(its start, ``Vq7-p``, survives URL quoting, so a quoted copy is found too)."""


@pytest.fixture
def rtsp_camera(painted: list) -> Iterator[RtspServer]:
    server = RtspServer(painted, fps=25, user="admin", password=CAMERA_PASSWORD).start()
    yield server
    server.stop()


def test_counting_an_rtsp_camera_leaks_nothing(tmp_path: Path, broker: Broker,
                                               rtsp_camera: RtspServer) -> None:
    run = run_daemon(tmp_path, broker, rtsp_camera.url, loop=True, seconds=14)
    check(run, Allowed(camera=("127.0.0.1", rtsp_camera.port)))
    box_wrote = [path for root in ("home", "state", "state-while-running", "state-after",
                                   "agent.log", "mqtt.bin")
                 for path in canary.files_under(tmp_path / root)]
    assert len(box_wrote) >= 4
    holding = [str(p) for p in box_wrote if b"Vq7-p" in p.read_bytes()]
    assert holding == [], "the camera password was written out"  # counted: it was used
