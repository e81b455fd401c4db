"""Delivery settings every HTTP sink shares: timeouts, retries, the pause while draining.

Why one place: Sensor.Community and InfluxDB fail the same ways (a dead server, a
5xx, a refusal a person must fix), and the sink thread that acts on those answers is
shared (``agent/publish/http_sink.py``), so the knobs that steer it are too.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DeliveryConfig(BaseModel):
    """Retry and pacing settings of an HTTP sink."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    enabled: bool = Field(default=True, description="false keeps the section but sends "
                          "nothing (and no longer holds rows in the outbox for it).")
    timeout_s: float = Field(default=20.0, gt=0, le=300,
                             description="Give up on one request after this long (retried).")
    retry_min_s: float = Field(default=5.0, gt=0, le=3600, description="First retry delay "
                               "after a network error or a server error (5xx); it doubles, "
                               "with random jitter, up to retry_max_s.")
    retry_max_s: float = Field(default=600.0, gt=0, le=86_400,
                               description="Longest delay between retries.")
    refused_retry_s: float = Field(
        default=3600.0, gt=0, le=86_400, description="Wait this long (jittered) after the "
        "server refuses this box itself (unknown node, wrong credentials, no such database: "
        "401/403/404): a person must act; the measurements are kept meanwhile.")
    pause_between_pushes_s: float = Field(
        default=1.0, ge=0, le=3600, description="Pause after each request while a backlog "
        "drains, so a box back from an outage does not flood the server.")

    @model_validator(mode="after")
    def _retry_bounds_ordered(self) -> DeliveryConfig:
        if self.retry_max_s < self.retry_min_s:
            raise ValueError("retry_max_s must be at least retry_min_s")
        return self
