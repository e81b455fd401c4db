"""Humidity quality control for optical particle sensors.

Optical PM sensors count particles that have swollen with water, so they over-read in
humid air, badly above ~90 %RH. With an RH source named in the config, every PM
measurement taken at or above the threshold gets :attr:`Quality.HIGH_HUMIDITY`, and,
when a hygroscopicity κ is configured, a corrected value is published next to the raw
one, divided by a κ-Köhler growth factor (a_w = RH / 100):

* ``crilley2018`` (default), the mass growth factor of Crilley et al. (2018, AMT 11,
  709-720), the form most published κ values for low-cost sensors were fitted with:
  the water taken up is weighed against a dry particle density of 1.65 g/cm³,

      C = 1 + (κ / 1.65) / (1 / a_w − 1)

* ``volume``, the volume growth factor of Petters & Kreidenweis (2007), without the
  density ratio (what Di Antonio et al. 2018 apply per size bin):

      C = 1 + κ · a_w / (1 − a_w)

Both give PM_dry = PM_wet / C; a κ must be used with the form it was fitted with (the
volume form corrects 1.65× more water: with κ = 0.4 it gives 0.81× Crilley's dry PM at
70 %RH and 0.69× at 90 %RH).

The raw value is always kept; the corrected one is a separate quantity
``<name>_rh_corrected`` whose ``meta`` names the RH source, the RH used, κ and the form.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from agent.models import Measurement, Quality

MASS_UNIT = "ug/m3"
RH_QUANTITY = "relative_humidity"
MAX_WATER_ACTIVITY = 0.99
"""Above this the growth term diverges; RH readings there are unreliable anyway."""
CORRECTED_SUFFIX = "_rh_corrected"
CRILLEY_DENSITY_RATIO = 1.65
"""Dry particle density over water density in Crilley et al. (2018)."""

GrowthForm = Literal["crilley2018", "volume"]


def growth_factor(rh_percent: float, kappa: float, form: GrowthForm = "crilley2018") -> float:
    """How many times heavier (crilley2018) or larger (volume) a particle is at this RH."""
    water_activity = min(max(rh_percent, 0.0) / 100.0, MAX_WATER_ACTIVITY)
    water_term = water_activity / (1.0 - water_activity)  # = 1 / (1/a_w - 1)
    if form == "crilley2018":
        return 1.0 + kappa / CRILLEY_DENSITY_RATIO * water_term
    return 1.0 + kappa * water_term


def kohler_dry_mass(pm_wet: float, rh_percent: float, kappa: float,
                    form: GrowthForm = "crilley2018") -> float:
    """Dry-equivalent mass concentration from a humid optical reading."""
    return pm_wet / growth_factor(rh_percent, kappa, form)


@dataclass(frozen=True)
class HumidityRule:
    """For one PM sensor: where its RH comes from and what to do with it."""

    pm_sensor: str
    rh_sensor: str
    threshold_percent: float
    kappa: float | None
    max_age_ms: int
    """An RH older than this (relative to the PM time stamp) is not used."""
    form: GrowthForm = "crilley2018"


class HumidityCorrector:
    """Flags and corrects PM measurements with the latest RH of their named source."""

    def __init__(self, rules: list[HumidityRule]) -> None:
        self._rules = {rule.pm_sensor: rule for rule in rules}
        self._sources = {rule.rh_sensor for rule in rules}
        self._latest_rh: dict[str, tuple[int, float]] = {}

    def apply(self, measurements: list[Measurement]) -> list[Measurement]:
        """Return the batch with PM flagged and corrected values appended after their raw."""
        if not self._rules:
            return measurements
        for m in measurements:  # RH first: a window's RH may come after its PM in a batch
            if m.sensor_id in self._sources and m.quantity == RH_QUANTITY:
                self._latest_rh[m.sensor_id] = (m.utc_ms, m.value)
        out: list[Measurement] = []
        for m in measurements:
            rule = self._rules.get(m.sensor_id)
            if rule is None or m.unit != MASS_UNIT:
                out.append(m)
                continue
            out.extend(self._correct(m, rule))
        return out

    def _correct(self, m: Measurement, rule: HumidityRule) -> list[Measurement]:
        latest = self._latest_rh.get(rule.rh_sensor)
        if latest is None or abs(m.utc_ms - latest[0]) > rule.max_age_ms:
            return [m]
        rh = latest[1]
        raw = replace(m, flags=m.flags | {Quality.HIGH_HUMIDITY}) \
            if rh >= rule.threshold_percent else m
        if rule.kappa is None:
            return [raw]
        factor = growth_factor(rh, rule.kappa, rule.form)
        corrected = replace(
            raw, quantity=m.quantity + CORRECTED_SUFFIX, value=m.value / factor,
            stats=None if m.stats is None else replace(
                m.stats, minimum=m.stats.minimum / factor, maximum=m.stats.maximum / factor),
            meta=tuple(sorted({**dict(m.meta), "rh_source": rule.rh_sensor,
                               "rh_percent": round(rh, 1), "kappa": rule.kappa,
                               "growth": rule.form}.items())))
        return [raw, corrected]
