"""``[cameras.<id>.setup]``: the camera set-up mode's privacy settings (docs/camera-setup.md).

Set-up mode shows an installer where people walk as a coarse heat map, never a
picture. The counter process counts *distinct people per grid cell* over a sliding
window and sends a cell only when at least ``min_people`` different people stood in
it; the rest stay blank. These settings bound that: a floor under k, a window of
minutes, and a session that ends by itself.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MIN_K = 3
"""No setting may show a cell fewer people than this walked through (one or two people
on a quiet street are recognisable by whoever saw them pass)."""


class SetupConfig(BaseModel):
    """How much the set-up heat map may show, for how long."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_people: int = Field(
        default=5, ge=MIN_K, le=1000, description=f"k: a heat map cell is shown only when at "
        f"least this many different people stood in it within window_s (at least {MIN_K}).")
    window_s: float = Field(
        default=600.0, ge=60, le=3600, description="Sliding window (s) over which people "
        "are accumulated per cell; older sightings are forgotten.")
    max_minutes: float = Field(
        default=60.0, gt=0, le=240, description="Longest set-up session (minutes); a "
        "session ends by itself after the minutes asked for, never later than this.")
