"""The ``[health]`` section: the agent's own heartbeat."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HealthConfig(BaseModel):
    """How often the agent reports on itself."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    interval_s: float = Field(default=60.0, ge=1, description="Heartbeat period.")
    stall_after_s: float = Field(
        default=120.0, ge=5, description="A sensor thread silent this long is reported "
        "stalled; the main loop stays healthy so the watchdog is not fooled into a restart.")
    summary_interval_s: float = Field(
        default=600.0, ge=0, le=86_400, description="Log one INFO line (sent, backlog, "
        "sensors up) this often, so a journal shows the box is alive; 0 turns it off.")
