"""Every sensor of the shipped simulated config, end to end through the daemon to MQTT.

The example config is used as shipped, except that windows shrink to one sample
so the test does not wait half a minute per window.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agent.config.profiles import all_profiles
from tests.mqtt_broker import Broker, Recorder, wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _toml_value(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value).lower() \
        if isinstance(value, bool) else str(value)


def test_every_simulated_sensor_reaches_mqtt_with_profile_units(
        tmp_path: Path, broker: Broker, recorder: Recorder) -> None:
    example = tomllib.loads((ROOT / "examples" / "simulated.toml").read_text())
    lines = ['device_id = "fleet-box"', "[mqtt]", "first_connect_jitter_s = 0",
             "[health]", "interval_s = 5"]
    for sensor_id, sensor in example["sensors"].items():
        lines.append(f'[sensors."{sensor_id}"]')
        fast = {**sensor, "window_s": sensor.get("interval_s", 5)}
        lines += [f"{key} = {_toml_value(value)}" for key, value in fast.items()
                  if not isinstance(value, dict)]
    config = tmp_path / "fleet.toml"
    config.write_text("\n".join(lines) + "\n")
    log = tmp_path / "agent.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "simulate", "--config", str(config),
         "--broker", f"{broker.host}:{broker.port}", "--state-dir", str(tmp_path / "state")],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ,
                                                              "PYTHONPATH": str(ROOT)})
    profiles = all_profiles()
    # Reported only with non-default options: the dB meter reports the configured
    # weighting (A by default); the DNMS reports LZeq only on V5/V6 firmware when asked.
    optional = {("dnms", "lzeq")} | {("db-meter", f"l{w}{s}") for w in "cz"
                                     for s in ("eq", "min", "max")}
    expected = {(sid, q.name) for sid, s in example["sensors"].items()
                for q in profiles[s["model"]].quantities} - optional
    units = {(sid, q.name): q.unit for sid, s in example["sensors"].items()
             for q in profiles[s["model"]].quantities}

    def seen() -> set[tuple[str, str]]:
        return {(m["sensor"], m["quantity"]) for m in recorder.measurements()}

    try:
        # NOx index is unknown for the SEN55's first ~10 s, like the real sensor.
        assert wait_until(lambda: expected <= seen(), 60), \
            (sorted(expected - seen()), log.read_text()[-2000:])
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    for m in recorder.measurements():
        key = (m["sensor"], m["quantity"])
        if key in units:
            assert m["unit"] == units[key], key
            profile_q = profiles[example["sensors"][m["sensor"]]["model"]].quantity(m["quantity"])
            assert profile_q.min <= m["value"] <= profile_q.max or \
                "out_of_range" in m.get("flags", []), key
    errors = {m["sensor"]: m["value"] for m in recorder.measurements()
              if m["quantity"] == "errors_total" and m["value"] > 0}
    assert errors == {}, f"emulated sensors should not fail: {errors}"
