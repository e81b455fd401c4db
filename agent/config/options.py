"""The base of every driver's options model (``[sensors.<id>.options]``).

Each driver module declares one subclass and registers it with the driver, so one
definition of each option, its type, range, default and description serves
``check-config``, the daemon, ``scan``, the emulators that need it and the test that
holds ``docs/configuration.md`` to it. It lives in the config layer, not beside the
drivers, because the emulators may read config but never the drivers.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DriverOptions(BaseModel):
    """Options of one driver: frozen, and an unknown key is a mistake, never ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
