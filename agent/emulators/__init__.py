"""Wire-level emulators of every supported device, with fault injection.

They power the test suite and ``lokaalmeten simulate``: serial devices sit
behind a real pseudo-terminal that pyserial opens like hardware; I2C devices
sit behind an smbus2-compatible bus object. Each device module registers a
factory with :func:`register`, keyed by the same model name as its driver.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_INFRASTRUCTURE = {"i2c_bus", "serial_pty", "signals", "simulation"}


@dataclass(frozen=True)
class EmulatorSpec:
    """How to make an emulated device for a model (``factory(**kwargs)``)."""

    model: str
    factory: Callable[..., Any]


_REGISTRY: dict[str, EmulatorSpec] = {}
_LOADED = False


def register(*models: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an emulated-device factory for one or more model names."""

    def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
        for model in models:
            if model in _REGISTRY:
                raise RuntimeError(f"emulator for {model!r} registered twice")
            _REGISTRY[model] = EmulatorSpec(model, factory)
        return factory

    return decorate


def registry() -> dict[str, EmulatorSpec]:
    """All emulated devices by model name (imports the device modules on first use)."""
    global _LOADED  # noqa: PLW0603 - one-time import of the plugin modules
    if not _LOADED:
        for info in pkgutil.iter_modules(__path__):
            if info.name not in _INFRASTRUCTURE and not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
        _LOADED = True
    return dict(_REGISTRY)
