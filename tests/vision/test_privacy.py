"""Privacy, proven: while video is counted, no image data goes anywhere but into numbers.

Three independent looks at the counter process:

1. Python's audit hooks (``sys.addaudithook``) inside the real counter process
   record every file opened for writing, every socket operation and every
   program started while it counts a video: there must be none. The only
   thing that leaves is the result channel, and every item on it is a
   numbers-only ``CounterRecord`` of a few hundred bytes; the MQTT payloads
   made from them validate against docs/payload.schema.json.
2. Audit hooks cannot see native code (OpenCV, FFmpeg, onnxruntime), so the
   counter also runs under ``strace``, counting an MJPEG stream from a local
   camera: at the system-call level it opens no file for writing, connects
   to nothing but the camera, and never listens or binds (no endpoint).
3. The source code: no image encoder, writer or window anywhere in agent/, and
   no server of any kind.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import pickle
import queue
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest

from agent.models import OutboxRecord
from agent.publish.payload import build_messages
from agent.vision.process import ChildSpec, CounterRecord, is_numbers_only, to_measurements
from tests.vision import children
from tests.vision.streams import INT8_MODEL, REPO, MjpegServer, vtest_frames, write_clip

pytestmark = pytest.mark.slow
SCHEMA = json.loads((REPO / "docs" / "payload.schema.json").read_text())


def settings(source: str, **extra: object) -> dict[str, object]:
    return {"source": source, "model": str(INT8_MODEL), "interval_s": 1, "fps_cap": 50,
            "loop": False, "lines": [{"name": "path", "x1": 230, "y1": 340, "x2": 230,
                                      "y2": 170}],
            "zones": [{"name": "square", "polygon": [[0, 0], [768, 0], [768, 576], [0, 576]],
                       "area_m2": 2.0, "density_on": 1.0, "density_off": 0.5}], **extra}


def test_counting_a_video_writes_and_sends_nothing_but_numbers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = write_clip(tmp_path / "clip.avi", vtest_frames(0, 120), fps=50)
    home = tmp_path / "home"  # native code writes beside the audit hook: watch HOME too
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    context = multiprocessing.get_context("spawn")
    output, findings, stop = context.Queue(), context.Queue(), context.Event()
    spec = ChildSpec("cam", settings(str(clip)), os.getpid(), "WARNING")
    child = context.Process(target=children.audited, args=(spec, output, stop, findings))
    child.start()
    records: list[object] = []
    result = None
    while result is None:
        with contextlib.suppress(queue.Empty):
            records.append(output.get(timeout=0.2))
        try:
            result = findings.get_nowait()
        except queue.Empty:
            assert child.is_alive() or not findings.empty(), f"exit {child.exitcode}"
    child.join(10)
    while True:
        try:
            records.append(output.get(timeout=0.5))
        except queue.Empty:
            break
    code, opened, events = result
    assert code == 3, "the video was counted to its end"
    assert opened > 0, "the hook saw the files the counter read (model, video)"
    assert events == [], "the counter wrote a file, used a socket or started a program"
    assert sorted(home.rglob("*")) == [], "something (ONNX Runtime telemetry?) wrote to HOME"
    assert records and all(type(r) is CounterRecord and is_numbers_only(r) for r in records)
    assert max(len(pickle.dumps(r)) for r in records) < 2048
    kinds = {r.kind for r in records}
    assert {"interval", "alert", "status"} <= kinds
    measurements = [m for r in records for m in to_measurements("cam", r, 0.0)]
    rows = [OutboxRecord(i, "0" * 32, i, m) for i, m in enumerate(measurements, 1)]
    for message in build_messages("box-1", rows, 50, 1):
        body = json.loads(message.payload)
        jsonschema.validate(body, SCHEMA)
        for item in body["measurements"]:
            assert isinstance(item["value"], int | float) and not isinstance(item["value"], bool)
            assert set(item) <= {"seq", "sensor", "quantity", "value", "unit", "time_ms",
                                 "meta"}


WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND")
TRACED = "openat,open,creat,connect,bind,listen,sendto,sendmsg,rename,renameat,renameat2," \
         "unlink,unlinkat,mkdir,mkdirat,truncate,execve,memfd_create"


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_at_the_system_call_level_the_counter_only_reads_and_talks_to_its_camera(
        tmp_path: Path) -> None:
    camera = MjpegServer(vtest_frames(0, 30), fps=25).start()
    port = camera.url.split(":")[2].split("/")[0]
    script = tmp_path / "counter.py"
    script.write_text(textwrap.dedent(f"""
        import json, multiprocessing, os, queue, sys, threading
        from agent.vision.process import ChildSpec, run_counter

        if __name__ == "__main__":
            sys.dont_write_bytecode = True
            output = multiprocessing.get_context("spawn").Queue()
            stop = multiprocessing.get_context("spawn").Event()
            got = []
            reader = threading.Thread(target=lambda: [got.append(output.get()) for _ in
                                                       iter(int, 1)], daemon=True)
            reader.start()
            spec = ChildSpec("cam", {settings(camera.url, loop=True)!r}, os.getppid(), "DEBUG")
            os.path.exists("/lokaalmeten-counting-starts-here")  # a marker in the trace
            stopper = threading.Timer(4.0, stop.set)
            stopper.start()
            try:
                run_counter(spec, output, stop)
            except SystemExit:
                pass
            os.path.exists("/lokaalmeten-counting-ended-here")
            print(json.dumps(len(got)))
        """))
    trace = tmp_path / "trace.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        result = subprocess.run(
            ["strace", "-f", "-qq", "-e", f"trace={TRACED},stat,newfstatat,statx",
             "-o", str(trace), sys.executable, str(script)],
            capture_output=True, text=True, timeout=120, env=env, check=False)
    finally:
        camera.stop()
    if result.returncode != 0 and "ptrace" in result.stderr:
        pytest.skip(f"strace cannot trace here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.strip()) >= 3, "the counter produced records"
    lines = trace.read_text().splitlines()
    start = next(i for i, x in enumerate(lines) if "counting-starts-here" in x)
    end = next(i for i, x in enumerate(lines) if "counting-ended-here" in x)
    counting = lines[start + 1:end]
    writes = [x for x in counting if re.search(r"\bopen(at)?\(|\bcreat\(", x)
              and WRITE_FLAGS.search(x) and "/dev/null" not in x]
    assert writes == [], "a file was opened for writing while counting"
    changes = [x for x in counting if re.search(
        r"\b(rename|renameat2?|unlink|unlinkat|mkdir|mkdirat|truncate|memfd_create|execve)\(",
        x) and "= -1" not in x]
    assert changes == []
    servers = [x for x in counting if re.search(r"\b(bind|listen)\(", x)]
    assert servers == [], "the counter offered an endpoint"
    connects = [x for x in counting if re.search(r"\bconnect\(", x)]
    assert connects, "the trace should show the connection to the camera"
    assert all(f"sin_port=htons({port})" in x and 'inet_addr("127.0.0.1")' in x
               for x in connects), connects
    camera_fds = {re.search(r"connect\((\d+),", x).group(1) for x in connects}
    sends = [x for x in counting if re.search(r"\b(sendto|sendmsg)\(", x)]
    assert all(re.search(r"send(to|msg)\((\d+),", x).group(2) in camera_fds for x in sends), \
        "sent something on a socket that is not the camera's"
    longest = max((len(x) for x in result.stderr.splitlines()), default=0)
    assert longest < 400, "a log line long enough to carry image data"


def test_no_code_in_the_agent_encodes_shows_or_serves_images() -> None:
    forbidden = re.compile(r"\b(imwrite|imencode|VideoWriter|imshow|namedWindow|"
                           r"HTTPServer|socketserver|websocket|flask|aiohttp)\b")
    offenders = [f"{p.relative_to(REPO)}:{n}" for p in (REPO / "agent").rglob("*.py")
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if forbidden.search(line)]
    assert offenders == []
