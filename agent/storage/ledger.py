"""Which outbox rows each sink has: a committed position per sink, plus acks since.

Why: with more than one sink (MQTT, Sensor.Community, ...) a row may leave the
outbox only when every configured sink has it, and a slow or failing sink must
never hold back another. So each sink reads the outbox at its own pace and
acknowledges what its receiver confirmed. What a sink acknowledged is kept in
memory until the outbox's next commit, which turns it into a durable *position*
(every row up to it is delivered to that sink, or deliberately skipped by it)
in the same transaction that deletes the rows every sink has. A kill -9 between
a confirmation and that commit costs a resend to that sink, never a row.

Acknowledgements may come out of order (several MQTT messages in flight), so a
position moves only over the unbroken run of acknowledged rows above it; rows
acknowledged past a gap wait in memory. Rows every sink has leave at once,
position or not, so with one sink the outbox behaves as before: a row goes at
the first commit after its PUBACK.

The bounds (row count, age, free-space floor) still delete the oldest rows,
whoever has them; :meth:`SinkLedger.count_drops` records, per sink, the rows it
lost that way.

This module holds no connection of its own: the outbox calls it under its lock,
inside its transactions, and applies a :class:`Settlement` only after the
transaction committed (a failed commit leaves the ledger as it was).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MQTT_SINK = "mqtt"
"""The sink every outbox has unless told otherwise: the MQTT forwarder."""


@dataclass
class Settlement:
    """What one commit decided; applied to the ledger once the transaction is durable."""

    positions: dict[str, int]
    deleted: int
    """Rows deleted: every sink had them, or the bounds dropped them."""
    removed: set[int] = field(default_factory=set)
    """Deleted rows above the lowest position (out of order, or dropped by the bounds)."""
    dropped: dict[str, int] = field(default_factory=dict)


class SinkLedger:
    """Positions and pending acknowledgements of the configured sinks (not thread-safe)."""

    def __init__(self, sinks: Sequence[str]) -> None:
        if not sinks or len(set(sinks)) != len(sinks):
            raise ValueError(f"sinks must be distinct and at least one: {list(sinks)}")
        self.sinks = tuple(sinks)
        self._position = dict.fromkeys(self.sinks, 0)
        self._dropped = dict.fromkeys(self.sinks, 0)
        self._acked: dict[str, set[int]] = {s: set() for s in self.sinks}
        self._stored: dict[str, tuple[int, int]] = {}
        """What the table holds per sink, so an unchanged position costs no write."""

    def load(self, conn: sqlite3.Connection) -> None:
        """Read the committed positions; a sink not in the table starts before every row."""
        for sink, position, dropped in conn.execute(
                "SELECT sink, position, dropped FROM sink_positions"):
            if sink in self._position:
                self._position[sink], self._dropped[sink] = int(position), int(dropped)
                self._stored[sink] = (int(position), int(dropped))

    def forget_stored(self) -> None:
        """The table was replaced (a damaged outbox set aside): write every position anew."""
        self._stored.clear()

    # -- sinks' side ---------------------------------------------------------------------

    def ack(self, sink: str, row_ids: Iterable[int]) -> None:
        """``sink`` has these rows (or skips them); effective at once for claims."""
        position = self._position[sink]
        self._acked[sink].update(i for i in row_ids if i > position)

    def start(self, sink: str, after_row_id: int) -> int:
        """Where a claim for ``sink`` starts: never before its committed position."""
        return max(after_row_id, self._position[sink])

    def has(self, sink: str, row_id: int) -> bool:
        return row_id <= self._position[sink] or row_id in self._acked[sink]

    def hidden_after(self, sink: str, row_id: int) -> int:
        """Acknowledged rows above ``row_id`` that a claim must skip."""
        return sum(1 for i in self._acked[sink] if i > row_id)

    def done(self) -> set[int]:
        """Rows every sink has that are still stored: they leave at the next commit."""
        acked = set().union(*self._acked.values())
        return {i for i in acked if all(self.has(sink, i) for sink in self.sinks)}

    def pending(self) -> int:
        """Acknowledgements not yet committed (each is resent if the agent dies now)."""
        return sum(len(acked) for acked in self._acked.values())

    def position(self, sink: str) -> int:
        return self._position[sink]

    def dropped(self, sink: str) -> int:
        return self._dropped[sink]

    def backlog(self, conn: sqlite3.Connection, sink: str, stored: int) -> int:
        """Stored rows ``sink`` does not have yet; ``stored`` is the outbox's row count.

        The rows up to the lowest position are deleted at each commit, so the sink
        furthest behind lacks every stored row: no count over a long backlog is needed
        (seconds on a Pi at two million rows). A sink ahead counts only what it lacks.
        """
        position = self._position[sink]
        if position <= min(self._position.values()):
            above = stored
        else:
            above = conn.execute("SELECT count(*) FROM outbox WHERE id > ?",
                                 (position,)).fetchone()[0]
        return max(0, int(above) - len(self._acked[sink]))

    # -- inside the outbox's commit ------------------------------------------------------

    def settle(self, conn: sqlite3.Connection) -> Settlement:
        """Advance positions, delete what every sink has, store changed positions."""
        positions = {s: self._advance(conn, s) for s in self.sinks}
        floor = min(positions.values())
        settlement = Settlement(positions, conn.execute(
            "DELETE FROM outbox WHERE id <= ?", (floor,)).rowcount)
        done = sorted(i for i in set().union(*self._acked.values())
                      if i > floor and all(self.has(sink, i) for sink in self.sinks))
        for start in range(0, len(done), 500):
            chunk = done[start:start + 500]
            settlement.removed.update(row for (row,) in conn.execute(
                f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(chunk))}) RETURNING id",
                chunk))
        settlement.deleted += len(settlement.removed)
        return settlement

    def count_drops(self, settlement: Settlement, pruned: Iterable[int]) -> None:
        """Rows the bounds deleted: each counts as dropped for every sink that lacked it."""
        for row_id in pruned:
            settlement.deleted += 1
            settlement.removed.add(row_id)
            for sink in self.sinks:
                if row_id > settlement.positions[sink] and row_id not in self._acked[sink]:
                    settlement.dropped[sink] = settlement.dropped.get(sink, 0) + 1

    def store(self, conn: sqlite3.Connection, settlement: Settlement) -> None:
        """Write the positions and drop counts that changed (last step of the commit)."""
        for sink in self.sinks:
            row = (settlement.positions[sink],
                   self._dropped[sink] + settlement.dropped.get(sink, 0))
            if self._stored.get(sink) != row:
                conn.execute("INSERT OR REPLACE INTO sink_positions (sink, position, dropped) "
                             "VALUES (?, ?, ?)", (sink, *row))

    def apply(self, settlement: Settlement) -> None:
        """The commit is durable: make its decisions the ledger's state."""
        for sink in self.sinks:
            position = settlement.positions[sink]
            self._position[sink] = position
            self._dropped[sink] += settlement.dropped.get(sink, 0)
            self._stored[sink] = (position, self._dropped[sink])
            self._acked[sink] = {i for i in self._acked[sink]
                                 if i > position and i not in settlement.removed}

    def _advance(self, conn: sqlite3.Connection, sink: str) -> int:
        """The sink's position moved over the unbroken run of its acknowledged rows."""
        position, acked = self._position[sink], self._acked[sink]
        if not acked:
            return position
        rows = conn.execute("SELECT id FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                            (position, len(acked) + 1)).fetchall()
        for (row_id,) in rows:
            if row_id not in acked:
                return position
            position = row_id
        # Every stored row above the position is acknowledged; acknowledged ids above
        # the last stored row belong to rows already deleted, so the position may pass them.
        return max(position, *acked)
