"""Firmware profiles and registered drivers and emulators match one to one."""

from __future__ import annotations

import pytest

from agent.config.profiles import all_profiles
from agent.emulators import registry as emulator_registry
from agent.plan import driver_options
from agent.sensors import registry as driver_registry

PROFILES = all_profiles()
DRIVERS = driver_registry()


def _is_generic(driver_name: str) -> bool:
    return bool(getattr(DRIVERS[driver_name].driver_type, "generic", False))


@pytest.mark.parametrize("model", sorted(PROFILES))
def test_every_profile_has_a_driver_with_exactly_its_quantities(model: str) -> None:
    profile = PROFILES[model]
    assert profile.driver_name in DRIVERS, f"no driver registered for {profile.driver_name}"
    spec = DRIVERS[profile.driver_name]
    assert spec.bus.value == profile.bus
    names = tuple(q.name for q in profile.quantities)
    if _is_generic(profile.driver_name):
        options = driver_options(model, spec, profile.driver_options, f"{model}.toml")
        assert tuple(options.quantity_names) == names
    else:
        assert spec.driver_type.quantities == names


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_every_specific_driver_has_a_profile(name: str) -> None:
    if _is_generic(name):
        assert any(p.driver == name for p in PROFILES.values()), \
            f"generic driver {name} has no example profile"
    else:
        assert name in PROFILES


@pytest.mark.parametrize("model", sorted(PROFILES))
def test_every_profile_has_an_emulator_for_simulated_mode(model: str) -> None:
    emulators = emulator_registry()
    assert model in emulators or PROFILES[model].driver_name in emulators


@pytest.mark.parametrize("model", sorted(PROFILES))
def test_profile_sanity(model: str) -> None:
    profile = PROFILES[model]
    assert profile.min_interval_s <= profile.default_interval_s
    assert profile.datasheet, "name the datasheet the facts come from"
    for quantity in profile.quantities:
        assert quantity.unit.strip() == quantity.unit and quantity.unit
