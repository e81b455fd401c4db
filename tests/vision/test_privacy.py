"""Privacy, proven: while video is counted, no image data goes anywhere but into numbers.

Two looks here, and the whole daemon's life under ``strace`` in tests/privacy:

1. Python's audit hooks (``sys.addaudithook``) inside the real counter process
   record every file opened for writing, every socket operation and every
   program started while it counts a video: there must be none. The only
   thing that leaves is the record pipe; every record on it decodes under
   the camera's schema (``agent.vision.record``) and passes the daemon's
   gate, and the MQTT payloads made from them validate against
   docs/payload.schema.json. (Audit hooks cannot see native code: the
   system-call view of OpenCV, FFmpeg and onnxruntime is
   tests/privacy/test_whole_life.py.)
2. The source code: no image encoder, writer or window anywhere in agent/, and
   no server of any kind.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import time
from pathlib import Path

import jsonschema
import pytest

from agent.config.camera import CameraConfig
from agent.models import OutboxRecord
from agent.publish.payload import build_messages
from agent.vision.child import ChildSpec
from agent.vision.process import to_measurements
from agent.vision.record import Gate, Kind, schema_for
from tests.vision import children
from tests.vision.streams import INT8_MODEL, REPO, vtest_frames, write_clip

pytestmark = pytest.mark.slow
SCHEMA = json.loads((REPO / "docs" / "payload.schema.json").read_text())


def settings(source: str, **extra: object) -> dict[str, object]:
    return {"source": source, "model": str(INT8_MODEL), "interval_s": 1, "fps_cap": 50,
            "loop": False, "lines": [{"name": "path", "x1": 230, "y1": 340, "x2": 230,
                                      "y2": 170}],
            "zones": [{"name": "square", "polygon": [[0, 0], [768, 0], [768, 576], [0, 576]],
                       "area_m2": 2.0, "density_on": 1.5, "density_off": 0.5}],
            "suppress_below": 0, **extra}


def test_counting_a_video_writes_and_sends_nothing_but_numbers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = write_clip(tmp_path / "clip.avi", vtest_frames(0, 120), fps=50)
    home = tmp_path / "home"  # native code writes beside the audit hook: watch HOME too
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    context = multiprocessing.get_context("spawn")
    reader, writer = context.Pipe(duplex=False)
    findings = context.Queue()
    spec = ChildSpec("cam", settings(str(clip)), "WARNING")
    schema = schema_for(CameraConfig.model_validate(spec.settings))
    gate = Gate(schema, time.monotonic(), now_s=time.monotonic,
                wall_ms=lambda: time.time_ns() // 1_000_000)
    child = context.Process(target=children.audited, args=(spec, writer, findings))
    child.start()
    writer.close()
    records = []
    while True:
        try:
            records.append(gate.admit(schema.decode(reader.recv_bytes(schema.max_size))))
        except EOFError:
            break
    child.join(10)
    code, opened, events = findings.get(timeout=10)
    assert code == 3, "the video was counted to its end"
    assert opened > 0, "the hook saw the files the counter read (model, video)"
    assert events == [], "the counter wrote a file, used a socket or started a program"
    assert sorted(home.rglob("*")) == [], "something (ONNX Runtime telemetry?) wrote to HOME"
    # Set-up records cross only while set-up mode is on (tests/privacy/test_setup_channel.py).
    assert {r.kind for r in records} == set(Kind) - {Kind.SETUP}, \
        "intervals, alerts and status all crossed, and nothing of set-up mode"
    measurements = [m for r in records for m in to_measurements("cam", r, 0.0)]
    rows = [OutboxRecord(i, "0" * 32, i, m) for i, m in enumerate(measurements, 1)]
    for message in build_messages("box-1", rows, 50, 1):
        body = json.loads(message.payload)
        jsonschema.validate(body, SCHEMA)
        for item in body["measurements"]:
            assert isinstance(item["value"], int | float) and not isinstance(item["value"], bool)
            assert set(item) <= {"seq", "sensor", "quantity", "value", "unit", "time_ms",
                                 "meta"}


def test_no_code_in_the_agent_encodes_shows_or_serves_images() -> None:
    forbidden = re.compile(r"\b(imwrite|imencode|VideoWriter|imshow|namedWindow|"
                           r"HTTPServer|socketserver|websocket|flask|aiohttp)\b")
    offenders = [f"{p.relative_to(REPO)}:{n}" for p in (REPO / "agent").rglob("*.py")
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if forbidden.search(line)]
    assert offenders == []
