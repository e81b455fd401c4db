"""The ``[location]`` section: where the box stands, for the receivers that place it.

A municipality's platform puts each box on a map and SensorThings needs a Location for
its Thing, so the coordinates travel in the box's retained birth message
(``agent.publish.birth``), not in every measurement. WGS 84, as every map and the
receivers expect; the agent never computes with them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LocationConfig(BaseModel):
    """Where the box is mounted."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    latitude: float = Field(ge=-90, le=90, description="WGS 84 latitude, degrees north.")
    longitude: float = Field(ge=-180, le=180, description="WGS 84 longitude, degrees east.")
    altitude_m: float | None = Field(default=None, ge=-500, le=9000,
                                     description="Height above sea level, m (optional).")
    height_m: float | None = Field(default=None, ge=0, le=500, description="Mounting height "
                                   "above the ground, m (optional; matters for PM and noise).")
    name: str | None = Field(default=None, min_length=1, max_length=100,
                             description="A place name people recognise, e.g. "
                             "'Oudegracht 231, lantern post'.")
