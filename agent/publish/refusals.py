"""What to do with a message the broker refused (MQTT 5 PUBACK reason code ≥ 0x80).

Why: a refused message stays in the outbox and is sent again, at the head of the
queue, after every reconnect. A message the broker will never take (over its size
limit, a payload a broker plugin rejects, a topic its ACL denies for this content)
would block everything behind it for ever. But a refusal can also be the broker's
whole answer for a while (an ACL that denies the box, a quota): then nothing may be
set aside, or one misconfigured ACL would move a box's whole backlog into the poison
table. So:

- *Too large* (0x95) and more than one measurement: split. Batches are built below
  half the refused size from then on (the broker's limit is below it).
- Otherwise a refusal of the same message (by its first row) counts only when the
  broker accepted some other message since its previous refusal; at ``poison_after``
  counted refusals the message is set aside. A broker that refuses everything never
  gets a refusal past the first counted.

Pure bookkeeping, no I/O: the forwarder asks and acts.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from agent.publish.mqtt import PACKET_TOO_LARGE

log = logging.getLogger(__name__)

MAX_TRACKED = 1000
"""Refused messages remembered at once; beyond that the oldest are forgotten (a broker
refusing this many different messages is refusing everything)."""


class Verdict(enum.Enum):
    SPLIT = "split"
    """Send the rows again in smaller messages."""
    RETRY = "retry"
    """Keep the rows and send them again after the reconnect."""
    POISON = "poison"
    """Set the rows aside: the broker keeps refusing them while it takes others."""


@dataclass
class _Count:
    refusals: int
    accepted_then: int
    """The accepted-message count at the last counted refusal."""


class Refusals:
    """Per refused message (keyed by its first row id): how often, and what then."""

    def __init__(self, poison_after: int) -> None:
        self._poison_after = poison_after
        self._accepted = 0
        self._counts: dict[int, _Count] = {}
        self.split_below: int | None = None
        """Largest payload to build, learnt from "too large" refusals; None: no limit learnt."""

    def accepted(self, first_row: int) -> None:
        """The broker took a message: it is not refusing everything."""
        self._accepted += 1
        self._counts.pop(first_row, None)

    def refused(self, first_row: int, rows: int, payload_bytes: int, code: int) -> Verdict:
        """Record a refusal and say what to do with the message's rows."""
        if code == PACKET_TOO_LARGE and rows > 1:
            limit = payload_bytes // 2
            self.split_below = limit if self.split_below is None else min(self.split_below,
                                                                            limit)
            return Verdict.SPLIT
        count = self._counts.pop(first_row, None)
        if count is None:
            count = _Count(1, self._accepted)
        elif self._accepted > count.accepted_then:
            count = _Count(count.refusals + 1, self._accepted)
        if count.refusals >= self._poison_after:
            return Verdict.POISON
        self._counts[first_row] = count  # re-inserted: the dict keeps the newest last
        if len(self._counts) > MAX_TRACKED:
            del self._counts[next(iter(self._counts))]
        return Verdict.RETRY

    def refusals(self, first_row: int) -> int:
        """Counted refusals of the message starting at ``first_row`` (0: none pending)."""
        count = self._counts.get(first_row)
        return 0 if count is None else count.refusals
