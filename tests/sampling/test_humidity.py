"""Humidity flag and κ-Köhler correction for optical PM sensors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import parse_config
from agent.errors import ConfigError
from agent.models import Measurement, Quality, Stats
from agent.sampling.humidity import HumidityCorrector, HumidityRule, kohler_dry_mass


def m(sensor: str, quantity: str, value: float, unit: str, *, utc_ms: int = 60_000,
      stats: Stats | None = None) -> Measurement:
    return Measurement(sensor, quantity, value, unit, utc_ms, 0.0, stats=stats)


def test_crilley_2018_mass_growth_worked_numbers() -> None:
    """C = 1 + (κ/1.65) / (1/a_w − 1): the dry particle density 1.65 g/cm³ of the paper."""
    assert kohler_dry_mass(10.0, 0.0, 0.4) == 10.0
    # a_w = 0.5: C = 1 + 0.4/1.65 · 1 = 1.2424
    assert kohler_dry_mass(12.424242, 50.0, 0.4) == pytest.approx(10.0)
    # a_w = 0.9: C = 1 + 0.4/1.65 · 9 = 3.1818
    assert kohler_dry_mass(31.818182, 90.0, 0.4) == pytest.approx(10.0)


def test_volume_growth_worked_numbers() -> None:
    """C = 1 + κ · a_w / (1 − a_w) (Petters & Kreidenweis 2007)."""
    assert kohler_dry_mass(14.0, 50.0, 0.4, "volume") == pytest.approx(10.0)  # C = 1.4
    assert kohler_dry_mass(46.0, 90.0, 0.4, "volume") == pytest.approx(10.0)  # C = 4.6


@pytest.mark.parametrize(("rh", "ratio"), [(70.0, 0.81), (90.0, 0.69)])
def test_the_volume_form_corrects_more_water_than_crilleys(rh: float, ratio: float) -> None:
    """The review's figures: with κ = 0.4 the volume form gives 0.81× / 0.69× Crilley's PM."""
    volume = kohler_dry_mass(100.0, rh, 0.4, "volume")
    assert volume / kohler_dry_mass(100.0, rh, 0.4) == pytest.approx(ratio, abs=0.005)


@given(st.floats(0, 1000), st.floats(0, 100), st.floats(0.01, 1.5))
def test_correction_never_increases_and_stays_finite(pm: float, rh: float, kappa: float) -> None:
    dry = kohler_dry_mass(pm, rh, kappa)
    assert 0 <= dry <= pm


def corrector(kappa: float | None = 0.4) -> HumidityCorrector:
    return HumidityCorrector([HumidityRule("pm", "climate", 90.0, kappa, 120_000)])


def test_humid_pm_is_flagged_and_corrected_next_to_raw() -> None:
    out = corrector().apply([
        m("pm", "pm2_5", 46.0, "ug/m3", stats=Stats(40.0, 50.0, 5, 60.0)),
        m("climate", "relative_humidity", 90.0, "%"),  # same batch, after the PM
        m("climate", "temperature", 12.0, "Cel"),
    ])
    raw, corrected = out[0], out[1]
    assert (raw.quantity, raw.value) == ("pm2_5", 46.0)
    assert Quality.HIGH_HUMIDITY in raw.flags and Quality.HIGH_HUMIDITY in corrected.flags
    assert corrected.quantity == "pm2_5_rh_corrected"
    growth = 1 + 0.4 / 1.65 * 9  # Crilley et al. 2018 at a_w = 0.9
    assert corrected.value == pytest.approx(46.0 / growth)
    assert corrected.stats.minimum == pytest.approx(40 / growth)
    assert dict(corrected.meta) == {"rh_source": "climate", "rh_percent": 90.0, "kappa": 0.4,
                                    "growth": "crilley2018"}
    assert [x.quantity for x in out[2:]] == ["relative_humidity", "temperature"]


def test_the_configured_growth_form_is_applied_and_named() -> None:
    rule = HumidityRule("pm", "climate", 90.0, 0.4, 120_000, "volume")
    _, corrected = HumidityCorrector([rule]).apply([
        m("climate", "relative_humidity", 90.0, "%"), m("pm", "pm2_5", 46.0, "ug/m3")])[1:]
    assert corrected.value == pytest.approx(10.0) and dict(corrected.meta)["growth"] == "volume"


def test_dry_air_is_not_flagged_and_stale_rh_is_not_used() -> None:
    c = corrector(kappa=None)
    c.apply([m("climate", "relative_humidity", 60.0, "%", utc_ms=0)])
    (fresh,) = c.apply([m("pm", "pm10", 20.0, "ug/m3", utc_ms=60_000)])
    assert fresh.flags == frozenset()
    (stale,) = c.apply([m("pm", "pm10", 20.0, "ug/m3", utc_ms=500_000)])
    assert stale.flags == frozenset() and stale.meta == ()


def test_non_mass_quantities_pass_untouched() -> None:
    c = corrector()
    c.apply([m("climate", "relative_humidity", 95.0, "%")])
    (count,) = c.apply([m("pm", "nc0_5", 30.0, "/cm3")])
    assert count.flags == frozenset()


BASE = """
device_id = "box"
[sensors.pm]
model = "sds011"
port = "/dev/ttyUSB0"
[sensors.pm.humidity]
source = "{source}"
kappa = 0.4
[sensors.climate]
model = "bme280"
[sensors.baro]
model = "bmp280"
address = 0x77
"""


def test_config_checks_the_rh_source() -> None:
    parse_config(BASE.format(source="climate"), "a.toml")
    with pytest.raises(ConfigError, match="no enabled sensor 'nope'"):
        parse_config(BASE.format(source="nope"), "a.toml")
    with pytest.raises(ConfigError, match="does not measure relative_humidity"):
        parse_config(BASE.format(source="baro"), "a.toml")
