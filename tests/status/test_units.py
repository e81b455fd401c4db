"""The unit map: every UCUM code the agent publishes has a readable form."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.config.profiles import all_profiles
from agent.status.units import DISPLAY_UNITS, camera_history_rule, display_unit, label

ROOT = Path(__file__).resolve().parents[2]


def test_every_profile_unit_and_every_documented_unit_is_mapped() -> None:
    profile_units = {q.unit for p in all_profiles().values() for q in p.quantities}
    documented = set(re.findall(r"`([^`]+)`", next(
        line for line in (ROOT / "docs" / "payload.md").read_text().splitlines()
        if line.startswith("| `unit` |"))))
    documented.discard("unit")
    assert profile_units <= set(DISPLAY_UNITS), profile_units - set(DISPLAY_UNITS)
    assert documented <= set(DISPLAY_UNITS), documented - set(DISPLAY_UNITS)


@pytest.mark.parametrize(("unit", "quantity", "shown"), [
    ("ug/m3", "pm2_5", "µg/m³"), ("Cel", "temperature", "°C"), ("[ppm]", "co2", "ppm"),
    ("%", "relative_humidity", "%"), ("/cm3", "nc2_5", "/cm³"), ("um", "x", "µm"),
    ("dB", "laeq", "dB(A)"), ("dB", "lafmax", "dB(A)"), ("dB", "la90", "dB(A)"),
    ("dB", "lceq", "dB(C)"), ("dB", "lzmin", "dB(Z)"), ("dB", "sound_level", "dB"),
    ("{person}/m2", "zone_a_density_mean", "people/m²"), ("1", "voc_index", ""),
    ("furlong", "x", "furlong"),
])
def test_display_units(unit: str, quantity: str, shown: str) -> None:
    assert display_unit(unit, quantity) == shown


@pytest.mark.parametrize(("quantity", "text"), [
    ("pm2_5", "PM2.5"), ("co2", "CO₂"), ("laeq", "LAeq"), ("lafmax", "LAFmax"),
    ("la90", "LA90"), ("lzeq", "LZeq"), ("count_0_3um", "Particles > 0.3 µm"),
    ("count_10um", "Particles > 10 µm"), ("line_door_in", "Line door: in"),
    ("zone_square_occupancy_max", "Zone square: occupancy (max)"),
    ("measurement_restarts", "Measurement restarts"),
])
def test_labels(quantity: str, text: str) -> None:
    assert label(quantity) == text


def test_camera_history_keeps_counts_and_levels_only() -> None:
    assert camera_history_rule("line_door_in") == "sum"
    assert camera_history_rule("zone_square_occupancy_mean") == "mean"
    assert camera_history_rule("occupancy_max") == "max"
    assert camera_history_rule("zone_square_density_mean") == "mean"
    for kept_out in ("fps", "frames", "inference_ms_p95", "zone_square_density_alert",
                     "frames_dropped_total"):
        assert camera_history_rule(kept_out) is None
