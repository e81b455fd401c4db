"""The microphone sound level meter through the whole daemon to a real broker.

``lokaalmeten simulate`` with two microphones: one replaying a recorded 94 dB
calibrator tone from a WAV file (known levels), one hearing simulated street
noise and aggregating three intervals per window. Only levels may leave: the
state directory holds nothing but the outbox, and every MQTT message is small.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agent.emulators.signals import pink_noise, tone
from tests.mqtt_broker import Broker, Recorder, wait_until
from tests.wavfile import write_wav

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

OFFSET = 120.0
LEVELS = {"laeq", "lafmax", "lafmin", "la10", "la50", "la90", "lceq", "lzeq"}


def test_microphone_levels_arrive_on_mqtt(tmp_path: Path, broker: Broker,
                                          recorder: Recorder) -> None:
    recording = tone(1000, 94.0, 3.0, 48000, OFFSET) + pink_noise(50.0, 3.0, 48000, OFFSET)
    wav = write_wav(tmp_path / "calibrator.wav", recording)
    config = tmp_path / "box.toml"
    config.write_text(f"""
device_id = "mic-box"
[mqtt]
first_connect_jitter_s = 0
[storage]
commit_interval_s = 0.5
[health]
interval_s = 2
min_send_interval_s = 2
refresh_s = 2
[sensors.mic-cal]
model = "microphone"
device = "wav:{wav}"
interval_s = 1
window_s = 1
[sensors.mic-cal.options]
calibration_offset_db = {OFFSET}
[sensors.mic-street]
model = "microphone"
device = "default"
interval_s = 1
window_s = 3
""")
    state = tmp_path / "state"
    log = tmp_path / "agent.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "simulate", "--config", str(config),
         "--broker", f"{broker.host}:{broker.port}", "--state-dir", str(state)],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})

    def of(sensor: str, quantities: set[str] = LEVELS) -> list[dict]:
        return [m for m in recorder.measurements()
                if m["sensor"] == sensor and m["quantity"] in quantities]

    def done() -> bool:
        beats = of("mic-street", {"errors_total"}) + of("mic-cal", {"errors_total"})
        return len(of("mic-cal", {"laeq"})) >= 3 and len(of("mic-street", {"laeq"})) >= 2 and \
            {m["quantity"] for m in of("mic-street")} >= LEVELS and len(beats) >= 4

    try:
        assert wait_until(done, 45), log.read_text()[-3000:]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0

    cal = of("mic-cal")
    assert {m["quantity"] for m in cal} == LEVELS
    assert all(m["unit"] == "dB" for m in cal + of("mic-street"))
    for m in cal:
        if m["quantity"] in ("laeq", "lceq", "la50"):
            assert m["value"] == pytest.approx(94.0, abs=0.1), m
    street = of("mic-street")
    windowed = [m for m in street if m["quantity"] == "laeq"]
    # Three 1 s intervals per 3 s window (fewer in the first: the meter starts in it), and
    # the SIGTERM's partial window, if one was open, says how much shorter it is.
    *whole, last = windowed
    assert whole and all(m["window_s"] == 3.0 and 1 <= m["n"] <= 3 for m in whole)
    assert 0 < last["window_s"] <= 3.0 and 1 <= last["n"] <= 3
    values = {m["quantity"]: m["value"] for m in street}
    assert 30 < values["la90"] <= values["la10"] < 100
    assert values["lafmin"] <= values["laeq"] <= values["lafmax"]
    health = of("mic-cal", {"errors_total", "frames_rejected_total"}) + \
        of("mic-street", {"errors_total", "frames_rejected_total"})
    assert health and all(m["value"] == 0 for m in health), health

    log_text = log.read_text()
    assert "failure" not in log_text, log_text[-3000:]
    # Privacy: only levels left the process; no audio was written or sent.
    assert sorted(p.name for p in state.iterdir()
                  if not p.name.startswith(("outbox.sqlite", "history.sqlite"))) \
        == ["outbox.reserve"], "nothing but the outbox, its disk-full reserve, the history"
    with sqlite3.connect(state / "history.sqlite") as history:  # the status page's plots
        series = set(history.execute("SELECT sensor, quantity FROM series"))
        kinds = {kind for (kind,) in history.execute(
            "SELECT DISTINCT typeof(acc) || typeof(lo) || typeof(hi) FROM points")}
    assert series and all(q in values for _, q in series), "levels only, as published"
    assert kinds <= {"realrealreal", "nullrealreal"}, "numbers only"
    assert set((state / "outbox.reserve").read_bytes()) <= {0}, "the reserve holds zeros"
    assert max(len(m.payload) for m in recorder.messages) < 20_000
