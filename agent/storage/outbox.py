"""SQLite outbox: durable, ordered, bounded; a row leaves only when every sink has it.

Why it looks like this:
- WAL with ``synchronous=FULL``: a committed row survives power loss, and a
  reader (the forwarder) never blocks the writer (the sampler).
- Writes are buffered in memory and committed together at most once per
  ``commit_interval_s``: an SD card wears per write, not per row. The price
  is that a power cut can lose up to that interval of fresh measurements;
  nothing committed and nothing acknowledged to anyone is ever lost.
- Every measurement gets ``(boot_id, seq)`` when it enters, so a receiver can
  see gaps and drop the duplicates that at-least-once delivery allows.
- Bounded by row count and age; what is pruned is counted in ``meta`` so the
  loss is reported, not silent. The bounds hold whoever lags: a row a slow sink
  has not sent is dropped all the same, and counted for that sink.
- Each sink (the MQTT forwarder, Sensor.Community, ...) reads at its own pace and
  acknowledges what its receiver confirmed; ``ledger.py`` turns that into a
  durable position per sink at each commit.
- Rows whose quality flags this version does not know (written by a newer
  version before a rollback) lose those flags with a warning rather than
  blocking everything queued behind them.

Beside it: the schema and its migrations in ``schema.py``, the sinks' positions
in ``ledger.py``, the age rule (which clock measures a row's age when the wall
clock can step) in ``age.py``, the free-space floor and disk-full reserve in
``space.py``, setting a damaged database aside in ``quarantine.py``, and the
high-water mark outside SQLite that shows a silent loss inside it in ``watermark.py``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from agent.clock import SYSTEM
from agent.errors import StorageError
from agent.models import Measurement, OutboxRecord, Quality, Stats
from agent.storage.age import AgeRule, kernel_boot_id
from agent.storage.ledger import MQTT_SINK, Settlement, SinkLedger
from agent.storage.quarantine import (
    COLUMNS,
    count_rows,
    is_corruption,
    read_counter,
    salvage,
    set_aside,
)
from agent.storage.schema import migrate
from agent.storage.space import DiskSpace
from agent.storage.watermark import Mark, MarkFile, mark_path, read_mark, reconcile

log = logging.getLogger(__name__)

_DAY_MS = 86_400_000
_QUALITY_NAMES = frozenset(q.value for q in Quality)
RESERVE_CHECK_COMMITS = 60
"""Commits between checks whether the disk has room to make the reserve again."""
PAGE_CACHE_KIB = 512
"""SQLite's page cache for the outbox connection. Fixed, so the daemon's memory has a
ceiling it reaches soon, not SQLite's default 2 MiB filled over days of backlogs: the
writer appends at one end and the sinks read and delete at the other, and the kernel
caches the file anyway."""
_INSERT = (f"INSERT INTO outbox ({', '.join(COLUMNS[1:])}) "
           f"VALUES ({', '.join(':' + name for name in COLUMNS[1:])})")
"""One statement for every commit, whatever its number of rows. sqlite-utils'
``insert_all`` wrote an INSERT per row count, each another prepared statement in the
connection's cache (up to 128 of them, hundreds of parameters each), and read
``sqlite_master`` twice per commit to do it."""


@dataclass(frozen=True)
class OutboxStats:
    """Numbers for the heartbeat."""

    depth: int
    dropped_total: int
    pending_writes: int
    commits: int
    quarantined_total: int = 0
    """Times a damaged outbox was set aside and a fresh one started."""
    poison_total: int = 0
    """Measurements set aside because a sink could never deliver them."""
    lost_total: int = 0
    """Committed measurements the database lost without an error (``watermark.py``)."""


@dataclass(frozen=True)
class SinkFigures:
    """One sink's view of the outbox, for the heartbeat."""

    backlog: int
    """Stored measurements this sink does not have yet."""
    dropped_total: int
    """Measurements the bounds dropped before this sink had them."""


class Outbox:
    """A thread-safe outbox; the main loop adds and commits, each sink claims and acks."""

    def __init__(self, path: Path, boot_id: str, *, max_rows: int, max_age_days: float,
                 wall_ms: Callable[[], int] = SYSTEM.wall_ms,
                 monotonic: Callable[[], float] = SYSTEM.monotonic,
                 kernel_boot: str | None = None, space: DiskSpace | None = None,
                 sinks: Sequence[str] = (MQTT_SINK,)) -> None:
        self.boot_id = boot_id
        self._ledger = SinkLedger(sinks)
        self._max_rows = max_rows
        self._age = AgeRule(int(max_age_days * _DAY_MS), wall_ms=wall_ms, monotonic=monotonic,
                            kernel_boot=kernel_boot or kernel_boot_id() or boot_id)
        self._boot_recorded = False
        self._lock = threading.Lock()
        self._pending: list[dict[str, object]] = []
        self._seq = 0
        self._commits = 0
        self._space = space
        self._path = path
        self._quarantined = 0
        mark = self._last_mark()
        self._top_id = mark.top_id if mark else 0  # what a recovery must number above
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._when_full_release(self._open)
            except sqlite3.DatabaseError as exc:
                if not is_corruption(exc):
                    raise
                self._recover(exc)
            if mark is not None:
                self._when_full_release(lambda: self._reconcile(mark))
            self._marks = MarkFile(mark_path(path))
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"{path}: cannot open outbox: {exc}") from exc
        if space is not None:
            space.keep_reserve()

    def _open(self) -> None:
        """Nothing here writes to an outbox that exists already, so a full disk can open it."""
        self._conn = sqlite3.connect(self._path, check_same_thread=False,
                                     isolation_level=None)
        self._db = sqlite_utils.Database(self._conn)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
        migrate(self._conn, self._db)
        self._ledger.load(self._conn)
        self._refresh()

    def _last_mark(self) -> Mark | None:
        """The mark left by the last commit; none for an outbox that is not there at all
        (deleted by hand: a fresh start, not a loss inside SQLite)."""
        mark = read_mark(mark_path(self._path))
        if mark is not None and not self._path.exists():
            log.warning("no outbox at %s, but a mark of row %d beside it: starting afresh",
                        self._path, mark.top_id)
            return None
        return mark

    def _reconcile(self, mark: Mark) -> None:
        """Count what the database lost since ``mark`` without saying so."""
        with self._db.atomic():
            lost = reconcile(self._conn, mark)
        if lost:
            log.error("outbox %s silently lost %d committed measurements (row ids %d..%d, "
                      "up to seq %d of boot %s): a damaged WAL? counted in outbox_lost_total",
                      self._path, lost, mark.top_id - lost + 1, mark.top_id, mark.last_seq,
                      mark.boot_id)
            self._refresh()

    def _refresh(self) -> None:
        """Cached figures, read from the database."""
        self._depth = self._conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        self._quarantined = self._counter("quarantined_total")
        self._top_id = self._conn.execute(
            "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'outbox'"
        ).fetchone()[0]

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """Set the damaged files aside, copy what can be read into a fresh outbox, count it.

        Row ids continue above the highest ever given out, so the forwarder's cursor
        and acknowledgements in flight stay valid.
        """
        depth_before, top_before = getattr(self, "_depth", 0), getattr(self, "_top_id", 0)
        if hasattr(self, "_conn"):
            self._conn.close()
        aside = set_aside(self._path)
        self._ledger.forget_stored()
        log.error("outbox %s is damaged (%s): set aside as %s; starting a fresh one",
                  self._path, exc, aside)
        dropped = read_counter(aside, "dropped_total")
        quarantined = read_counter(aside, "quarantined_total") + 1
        self._open()
        saved = 0
        with self._db.atomic():
            for chunk in _chunks(salvage(aside, top_before), 500):
                self._conn.executemany(
                    f"INSERT INTO outbox ({', '.join(COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(COLUMNS))})", chunk)
                saved += len(chunk)
            lost = max(0, max(depth_before, count_rows(aside)) - saved)
            top = max(top_before, self._conn.execute(
                "SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0])
            self._conn.execute("DELETE FROM sqlite_sequence WHERE name = 'outbox'")
            self._conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?)",
                               (top,))
            self._conn.execute("UPDATE meta SET value = ? WHERE key = 'dropped_total'",
                               (dropped + lost,))
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('quarantined_total', ?)",
                               (quarantined,))
        log.error("outbox recovery: %d measurements saved, %d lost (counted as dropped)",
                  saved, lost)
        self._refresh()

    def _when_full_release(self, operation: Callable[[], None]) -> None:
        """Run ``operation``; on "disk full", give back the reserve and run it once more."""
        try:
            operation()
        except sqlite3.OperationalError as exc:
            if "full" not in str(exc) or self._space is None or not self._space.release():
                raise
            operation()

    # -- writer side --------------------------------------------------------------

    def add(self, measurements: Iterable[Measurement]) -> None:
        """Number and buffer measurements; they become durable at the next :meth:`commit`."""
        with self._lock:
            for measurement in measurements:
                self._seq += 1
                self._pending.append(_to_row(measurement, self.boot_id, self._seq))

    def commit(self) -> int:
        """Write buffered rows, the sinks' positions and the deletion of what every sink
        has in one transaction; prune bounds. Returns the number of rows written.
        """
        with self._lock:
            rows, self._pending = self._pending, []
            if not rows and not self._ledger.pending():
                return 0
            settled: list[Settlement] = []

            def write() -> None:
                settled.clear()
                with self._db.atomic():  # one transaction: one fsync of the WAL
                    if not self._boot_recorded:
                        self._conn.execute(
                            "INSERT OR IGNORE INTO boots (boot_id, kernel_boot) VALUES (?, ?)",
                            (self.boot_id, self._age.kernel_boot))
                    if rows:  # this boot's high-water mark, for receivers after a crash
                        self._conn.execute("UPDATE boots SET last_seq = ? WHERE boot_id = ?",
                                           (rows[-1]["seq"], self.boot_id))
                    settlement = self._ledger.settle(self._conn)
                    pruned = self._make_room(len(rows))
                    if rows:
                        self._conn.executemany(_INSERT, rows)
                    pruned += self._prune(self._depth + len(rows) - settlement.deleted
                                          - len(pruned))
                    self._ledger.count_drops(settlement, pruned)
                    self._ledger.store(self._conn, settlement)
                    settled.append(settlement)

            try:
                try:
                    self._when_full_release(write)
                except sqlite3.DatabaseError as exc:
                    if not is_corruption(exc):
                        raise
                    self._recover(exc)
                    write()
            except sqlite3.Error as exc:
                self._pending = rows + self._pending
                raise StorageError(f"outbox commit failed: {exc}") from exc
            (settlement,) = settled
            self._ledger.apply(settlement)
            self._top_id = self._conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()[0]
            self._boot_recorded = True
            if rows:  # after the commit, so the mark is never ahead of the database
                self._marks.write(Mark(self._top_id, self.boot_id, self._seq))
            self._depth += len(rows) - settlement.deleted
            self._commits += 1
            if self._space is not None and self._commits % RESERVE_CHECK_COMMITS == 0:
                self._space.keep_reserve()
            return len(rows)

    # -- sinks' side ------------------------------------------------------------------

    def claim(self, after_row_id: int, limit: int, sink: str = MQTT_SINK) -> list[OutboxRecord]:
        """Committed rows after ``after_row_id``, oldest first, minus ones ``sink`` has."""
        with self._lock:
            start = self._ledger.start(sink, after_row_id)
            hidden = self._ledger.hidden_after(sink, start)
            try:
                cursor = self._conn.execute(
                    "SELECT * FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                    (start, limit + hidden))
                names = [d[0] for d in cursor.description]
                rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
            except sqlite3.Error as exc:
                if is_corruption(exc):
                    self._recover(exc)  # the next claim reads the fresh outbox
                    return []
                raise StorageError(f"outbox read failed: {exc}") from exc
            records = (_from_row(row) for row in rows)
            return [r for r in records if not self._ledger.has(sink, r.row_id)][:limit]

    def ack(self, row_ids: Iterable[int], sink: str = MQTT_SINK) -> None:
        """``sink``'s receiver has these (or ``sink`` skips them); made durable at the next
        commit, which also deletes the rows every sink has."""
        with self._lock:
            self._ledger.ack(sink, row_ids)

    def set_aside(self, row_ids: Iterable[int], reason: str, sink: str = MQTT_SINK) -> int:
        """Copy rows ``sink`` can never deliver to the ``poison`` table (kept, counted) and
        skip them for that sink; other sinks still get them.

        For a measurement the broker can never take (one alone is larger than its packet
        limit): left in place it would block every row behind it for ever.
        """
        ids = sorted(row_ids)
        marks = ",".join("?" * len(ids))
        with self._lock, self._db.atomic():
            copied = self._conn.execute(
                f"INSERT INTO poison SELECT {', '.join(COLUMNS)}, ? FROM outbox "
                f"WHERE id IN ({marks})", (f"{sink}: {reason}", *ids)).rowcount
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('poison_total', 0)")
            self._conn.execute("UPDATE meta SET value = value + ? WHERE key = 'poison_total'",
                               (copied,))
            self._ledger.ack(sink, ids)
        log.error("set aside %d measurement(s) that %s cannot deliver (%s); they are kept "
                  "in the outbox's poison table", copied, sink, reason)
        return copied

    def acks_waiting(self) -> int:
        """Acknowledgements not yet committed: each is resent if the agent dies now."""
        with self._lock:
            return self._ledger.pending()

    def sink_figures(self, sink: str) -> SinkFigures:
        """Backlog and losses of one sink, for the heartbeat."""
        with self._lock:
            return SinkFigures(self._ledger.backlog(self._conn, sink, self._depth),
                               self._ledger.dropped(sink))

    def previous_boot(self) -> tuple[str, int] | None:
        """(boot id, last committed seq) of the agent start before this one, if any.

        Whatever that boot numbered after its last commit was lost with it (at most
        ``commit_interval_s`` of measurements after a crash or power cut); every seq
        up to this one was committed, so a receiver missing one of them knows a
        measurement that was stored did not reach it.
        """
        with self._lock:
            row = self._conn.execute(
                "SELECT boot_id, last_seq FROM boots WHERE boot_id != ? "
                "ORDER BY rowid DESC LIMIT 1", (self.boot_id,)).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))

    def stats(self) -> OutboxStats:
        with self._lock:
            return OutboxStats(self._depth - len(self._ledger.done()),
                               self._counter("dropped_total"),
                               len(self._pending), self._commits, self._quarantined,
                               self._counter("poison_total"), self._counter("lost_total"))

    def close(self) -> None:
        """Commit what is buffered and close the database."""
        self.commit()
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._marks.close()

    # -- internals ------------------------------------------------------------------

    def _make_room(self, adding: int) -> list[int]:
        """Below the free-space floor, drop as many of the oldest rows as are being added."""
        if not adding or self._space is None or not self._space.low():
            return []
        dropped = _ids(self._conn.execute(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?) "
            "RETURNING id", (adding,)))
        if dropped:
            self._conn.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped_total'",
                               (len(dropped),))
            log.warning("disk nearly full (%.1f MB free): dropped %d oldest measurements",
                        self._space.free_mb(), len(dropped))
        return dropped

    def _prune(self, depth: int) -> list[int]:
        """Drop rows past the age and count bounds; ``depth`` is the row count before."""
        pruned = self._age.prune(self._conn)
        excess = depth - len(pruned) - self._max_rows  # the cached depth spares a count(*)
        if excess > 0:
            pruned += _ids(self._conn.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?) "
                "RETURNING id", (excess,)))
        if pruned:
            self._conn.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped_total'",
                               (len(pruned),))
            log.warning("outbox full or stale: dropped %d oldest measurements", len(pruned))
        return pruned

    def _counter(self, key: str) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0


def _ids(cursor: sqlite3.Cursor) -> list[int]:
    """The ids a ``DELETE ... RETURNING id`` removed."""
    return [int(row_id) for (row_id,) in cursor]


def _chunks(rows: Iterable[tuple[object, ...]], size: int) -> Iterator[list[tuple[object, ...]]]:
    chunk: list[tuple[object, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _to_row(m: Measurement, boot_id: str, seq: int) -> dict[str, object]:
    stats = m.stats
    return {
        "boot_id": boot_id, "seq": seq, "sensor": m.sensor_id, "quantity": m.quantity,
        "value": m.value, "unit": m.unit, "utc_ms": m.utc_ms, "monotonic_s": m.monotonic_s,
        "flags": ",".join(sorted(m.flags)),
        "min": stats.minimum if stats else None, "max": stats.maximum if stats else None,
        "n": stats.count if stats else None, "window_s": m.span_s,
        "meta": json.dumps(dict(m.meta)) if m.meta else None,
    }


def _known_flags(row_id: int, text: str) -> frozenset[Quality]:
    """Flags this version knows; others (a newer version's, seen after a rollback) are
    dropped with a warning, so one unknown word never blocks the queue behind it."""
    names = {name for name in text.split(",") if name}
    unknown = names - _QUALITY_NAMES
    if unknown:
        log.warning("outbox row %d: dropping unknown quality flags %s (written by a newer "
                    "agent?)", row_id, ",".join(sorted(unknown)))
    return frozenset(Quality(name) for name in names - unknown)


def _from_row(row: dict[str, Any]) -> OutboxRecord:
    """An outbox row (column name → SQLite value) as the record the forwarder sends."""
    stats = None
    if row["n"] is not None:
        stats = Stats(float(row["min"]), float(row["max"]), int(row["n"]),
                      float(row["window_s"]))
    flags = _known_flags(int(row["id"]), str(row["flags"] or ""))
    meta = tuple(sorted(json.loads(str(row["meta"])).items())) if row["meta"] else ()
    measurement = Measurement(
        sensor_id=str(row["sensor"]), quantity=str(row["quantity"]),
        value=float(row["value"]), unit=str(row["unit"]),
        utc_ms=int(row["utc_ms"]), monotonic_s=float(row["monotonic_s"] or 0.0),
        flags=flags, stats=stats, meta=meta,
        window_s=None if stats is not None or row["window_s"] is None else float(row["window_s"]))
    return OutboxRecord(int(row["id"]), str(row["boot_id"]), int(row["seq"]), measurement)
