"""A corrupt outbox is set aside, what can be read is saved, and the box goes on.

Why: SD cards corrupt files. A damaged outbox used to need a human: a garbage
or truncated file made every start fail (a restart every 5 s for ever), one
bad page made every commit fail (the watchdog killed the agent every minute),
and the heartbeat, which travels through the same outbox, could not say so.
Now the damaged files are renamed to ``<name>.corrupt-<UTC time>`` (kept for
forensics, never read again by the agent), the rows that can still be read
are copied into a fresh outbox with their ids, and the event is counted
(``outbox_quarantined_total``) so the box reports it as soon as it can talk.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeGuard

log = logging.getLogger(__name__)

_CORRUPTION = ("malformed", "not a database", "file is encrypted", "corrupt")
"""Words of SQLite's corruption errors. An I/O error is not among them: a card that
fails to read once may read again, and its rows must not be set aside for that."""
HEADER_BYTES = 100
SALVAGE_CHUNK = 1000
"""Rows read per query while salvaging; a bad page costs at most this range."""
COLUMNS = ("id", "boot_id", "seq", "sensor", "quantity", "value", "unit", "utc_ms",
           "monotonic_s", "flags", "min", "max", "n", "window_s", "meta")


def is_corruption(exc: BaseException) -> TypeGuard[sqlite3.DatabaseError]:
    """SQLite's way of saying the file is damaged (not full, not locked, not missing)."""
    return isinstance(exc, sqlite3.DatabaseError) and any(
        word in str(exc).lower() for word in _CORRUPTION)


def set_aside(path: Path) -> Path:
    """Rename the database and its WAL and shared-memory files; return the new main path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            source.rename(target.with_name(target.name + suffix))
    return target


def _top_id(conn: sqlite3.Connection, hint: int) -> int:
    """The highest row id to look for: the table's, else AUTOINCREMENT's, else the hint."""
    for query in ("SELECT max(id) FROM outbox",
                  "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'"):
        try:
            row = conn.execute(query).fetchone()
        except sqlite3.Error:
            continue
        if row and row[0]:
            return max(int(row[0]), hint)
    return hint


def _readable_copy(path: Path) -> Path | None:
    """A copy of a damaged file whose header's page count matches its length.

    SQLite refuses a whole file whose header promises more pages than it has
    (a file cut short), although its first part is intact; on the copy the
    header is made to agree. None when no copy can be made (e.g. disk full).
    """
    copy = path.with_name(path.name + ".salvage")
    try:
        shutil.copyfile(path, copy)
        with copy.open("r+b") as f:
            header = f.read(HEADER_BYTES)
            if len(header) == HEADER_BYTES and header.startswith(b"SQLite format 3\0"):
                page_size = int.from_bytes(header[16:18], "big")
                page_size = 65536 if page_size == 1 else page_size
                pages = copy.stat().st_size // page_size
                if int.from_bytes(header[28:32], "big") > pages:
                    f.seek(28)
                    f.write(pages.to_bytes(4, "big"))
    except OSError as exc:
        log.warning("cannot copy %s for salvage: %s", path, exc)
        copy.unlink(missing_ok=True)
        return None
    return copy


def salvage(path: Path, top_hint: int = 0) -> Iterator[tuple[object, ...]]:
    """Every outbox row that can still be read from a damaged file, in id order.

    Rows are read in id ranges, so a bad page loses its range, not the rest.
    ``top_hint`` is the highest id the caller knows was given out (the damaged
    file may no longer say). The damaged file itself is never written.
    """
    copy = _readable_copy(path)
    try:
        yield from _rows(copy or path, top_hint)
    finally:
        if copy is not None:
            copy.unlink(missing_ok=True)


def _rows(path: Path, top_hint: int) -> Iterator[tuple[object, ...]]:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return
    try:
        top = _top_id(conn, top_hint)
        columns = ", ".join(COLUMNS)
        for start in range(0, top, SALVAGE_CHUNK):
            try:
                yield from conn.execute(
                    f"SELECT {columns} FROM outbox WHERE id > ? AND id <= ? ORDER BY id",
                    (start, start + SALVAGE_CHUNK)).fetchall()
            except sqlite3.Error as exc:
                log.warning("outbox rows %d..%d unreadable: %s", start + 1,
                            start + SALVAGE_CHUNK, exc)
    finally:
        conn.close()


def count_rows(path: Path) -> int:
    """How many rows the damaged file held, where its indexes still say (else 0)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def read_counter(path: Path, key: str) -> int:
    """A counter from the damaged file's ``meta`` table, 0 when it cannot be read."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0
