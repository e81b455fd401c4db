"""The words a sink and the shared HTTP loop speak (pure): a request, the work a batch
of rows becomes, and what an answer means.

Kept apart from ``http_sink.py`` so the pure planners (``sensor_community.py``,
``influxdb.py``) can say what they produce without importing a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar


class Verdict(StrEnum):
    """What a response means for the request and the rows in it."""

    DELIVERED = "delivered"
    REJECTED = "rejected"
    """This request can never succeed as it is: split it, or skip its rows."""
    REFUSED = "refused"
    """The box itself is refused (unknown node, credentials, database): keep the rows,
    tell a person once, wait long."""
    RETRY = "retry"
    """The server or the network failed (5xx, 408, 429, no answer): keep, retry soon."""


class Request(Protocol):
    """What the shared loop needs of one request."""

    @property
    def label(self) -> str: ...

    @property
    def row_ids(self) -> tuple[int, ...]: ...


R = TypeVar("R", bound=Request)


@dataclass(frozen=True)
class Work(Generic[R]):
    """What the sink does with a batch of rows."""

    requests: list[R]
    skip: list[int]
    """Rows this sink does not take; acknowledged at once so they never wait for it."""
    last_row_id: int
    """The last row the work covers; rows after it are left for the next batch."""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as the loop sees it; status None when no answer came."""

    status: int | None
    reason: str
    retry_after_s: float | None = None


def verdict(status: int) -> Verdict:
    """What a status code means to a sink, when the body adds nothing: 2xx delivered;
    408, 429 and 5xx retried; 400, 413, 422 this request; any other 4xx this box."""
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status in (408, 429) or status >= 500:
        return Verdict.RETRY
    if status in (400, 413, 422):
        return Verdict.REJECTED
    return Verdict.REFUSED
