"""The outbox's tables and the steps from each older schema version to the current one.

Why a module of its own: every version step stays here, in order, beside the
one number that names the result, so an outbox written by any earlier agent is
brought up to date the same way (``PRAGMA user_version`` records how far it got).
A newer schema than this agent knows is refused, never touched: a rollback must
not destroy what a newer version stored.
"""

from __future__ import annotations

import sqlite3

import sqlite_utils

from agent.errors import StorageError
from agent.storage.quarantine import COLUMNS

SCHEMA_VERSION = 5


def migrate(conn: sqlite3.Connection, db: sqlite_utils.Database) -> None:
    """Create the tables of a fresh outbox, or bring an older one up to ``SCHEMA_VERSION``."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StorageError(f"outbox schema {version} is newer than this agent "
                           f"({SCHEMA_VERSION}); refusing to touch it")
    if version == SCHEMA_VERSION:
        return  # nothing is written to an up-to-date outbox: a full disk can open it
    with db.atomic():  # all steps or none: a crash mid-way leaves the old version intact
        _upgrade(conn, db, version)


def _upgrade(conn: sqlite3.Connection, db: sqlite_utils.Database, version: int) -> None:
    if "outbox" not in db.table_names():
        # AUTOINCREMENT: ids must never be reused once the table empties, because
        # every sink's position assumes each new row sorts after every sent one.
        conn.execute("""
            CREATE TABLE outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                boot_id TEXT NOT NULL, seq INTEGER NOT NULL,
                sensor TEXT NOT NULL, quantity TEXT NOT NULL, value REAL NOT NULL,
                unit TEXT NOT NULL, utc_ms INTEGER NOT NULL, monotonic_s REAL,
                flags TEXT, min REAL, max REAL, n INTEGER, window_s REAL, meta TEXT)""")
        db.table("outbox").create_index(["utc_ms"])
        db.table("meta").create({"key": str, "value": int}, pk="key")
        db.table("meta").insert({"key": "dropped_total", "value": 0})
    if version < 2:  # the age rule: which agent boot ran on which kernel boot
        conn.execute("CREATE TABLE IF NOT EXISTS boots "
                     "(boot_id TEXT PRIMARY KEY, kernel_boot TEXT NOT NULL)")
        conn.execute("CREATE INDEX IF NOT EXISTS outbox_monotonic_s ON outbox(monotonic_s)")
    if version < 3:  # the last seq each boot committed
        conn.execute("ALTER TABLE boots ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0")
    if version < 4:  # rows that can never be delivered, kept aside
        conn.execute(f"CREATE TABLE IF NOT EXISTS poison ({', '.join(COLUMNS)}, "
                     "reason TEXT NOT NULL)")
    if version < 5:
        # Each sink's position: every row up to it is delivered to that sink (or was
        # skipped by it), and how many rows the bounds dropped before it had them.
        # Up to schema 4 a row left the outbox on its PUBACK, so whatever an older
        # outbox holds is unsent: position 0 (no row) is the truth for every sink.
        conn.execute("CREATE TABLE IF NOT EXISTS sink_positions (sink TEXT PRIMARY KEY, "
                     "position INTEGER NOT NULL, dropped INTEGER NOT NULL DEFAULT 0)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
