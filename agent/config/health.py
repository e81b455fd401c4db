"""The ``[health]`` section: the agent's own heartbeat."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class HealthConfig(BaseModel):
    """How often the agent reports on itself."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    interval_s: float = Field(default=60.0, ge=1, description="How often the box reads its "
                              "own health (the values go out as the next two keys say).")
    min_send_interval_s: float = Field(
        default=300.0, ge=0, le=86_400, description="A health value that changed goes out, "
        "but not sooner than this after its last sending (uptime: every 5 minutes).")
    refresh_s: float = Field(
        default=3600.0, ge=0, le=86_400, description="Every health value goes out at least "
        "this often, changed or not.")
    stall_after_s: float = Field(
        default=120.0, ge=5, description="A sensor thread silent this long is reported "
        "stalled; the main loop stays healthy so the watchdog is not fooled into a restart.")
    summary_interval_s: float = Field(
        default=600.0, ge=0, le=86_400, description="Log one INFO line (sent, backlog, "
        "sensors up) this often, so a journal shows the box is alive; 0 turns it off.")

    @model_validator(mode="after")
    def _refresh_covers_changes(self) -> HealthConfig:
        if self.refresh_s < self.min_send_interval_s:
            raise ValueError("refresh_s must be at least min_send_interval_s")
        return self
