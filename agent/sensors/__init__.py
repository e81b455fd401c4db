"""Sensor drivers, one module per model, and the registry from model name to driver.

Each driver module registers itself with :func:`register`; :func:`registry`
imports every module in this package once, so adding a sensor is adding a
file (plus its firmware profile and emulator).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from agent.config.options import DriverOptions
from agent.sensors.base import BusKind, SensorDriver

DriverT = TypeVar("DriverT", bound=type)


@dataclass(frozen=True)
class DriverSpec:
    """How to build a driver: its bus kind, options type and class.

    ``options_type`` is the driver's pydantic options model: ``check-config`` and the
    daemon validate the ``[sensors.<id>.options]`` table against it, ``scan`` builds
    drivers with it and ``docs/configuration.md`` is tested against it, so each option
    and its default are defined once.
    """

    model: str
    bus: BusKind
    options_type: type[DriverOptions]
    driver_type: type[SensorDriver]

    def build(self, bus: Any, options: DriverOptions) -> SensorDriver:
        """Construct the driver on an open bus (an I2CDevice or a SerialLink)."""
        return self.driver_type(bus, options)


_REGISTRY: dict[str, DriverSpec] = {}
_LOADED = False


def register(*models: str, bus: BusKind,
             options: type[DriverOptions]) -> Callable[[DriverT], DriverT]:
    """Class decorator: register a driver for one or more model names."""

    def decorate(cls: DriverT) -> DriverT:
        for model in models:
            if model in _REGISTRY:
                raise RuntimeError(f"sensor model {model!r} registered twice")
            _REGISTRY[model] = DriverSpec(model, bus, options, cls)
        return cls

    return decorate


def registry() -> dict[str, DriverSpec]:
    """All registered drivers by model name (imports the driver modules on first use)."""
    global _LOADED  # noqa: PLW0603 - one-time import of the plugin modules
    if not _LOADED:
        for info in pkgutil.iter_modules(__path__):
            if info.name != "base" and not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
        _LOADED = True
    return dict(_REGISTRY)
