"""The ``[storage]`` section: where the outbox lives and how large it may grow."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class StorageConfig(BaseModel):
    """Outbox location and bounds. About 200 bytes per stored measurement."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    path: Path = Field(default=Path("/var/lib/lokaalmeten/outbox.sqlite"),
                       description="SQLite file; its directory must be writable.")
    max_rows: int = Field(default=2_000_000, ge=100,
                          description="Most measurements kept; the oldest are dropped first.")
    max_age_days: float = Field(
        default=30.0, gt=0, le=3650, description="Measurements older than this are dropped "
        "(age on the monotonic clock where it can be; never on a stepped wall clock: see "
        "docs/operations.md).")
    min_free_mb: float = Field(
        default=64.0, ge=0, le=1_000_000, description="Keep at least this much free on the "
        "outbox's file system: below it, each commit drops as many of the oldest "
        "measurements as it adds (counted), so the outbox stops growing. 0 turns it off.")
    reserve_mb: float = Field(
        default=16.0, ge=0, le=10_000, description="Size of a reserve file kept beside the "
        "outbox and deleted when the disk is full anyway, so the outbox can still open, "
        "commit and drain. 0 turns it off.")
    commit_interval_s: float = Field(
        default=1.0, ge=0.05, le=60,
        description="Batch writes into one commit per interval to spare SD cards.")
