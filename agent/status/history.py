"""A small, bounded history of values on the box, for the status page's plots.

The outbox forgets a measurement once the broker has it; the plots need the last day
without asking a server. So every published data value (sensor windows, camera counts;
not the heartbeat) is folded into 5-minute buckets per (sensor, quantity) and kept for
at most ``days`` (7), pruned hourly. One bucket is one row of about 45 bytes (measured:
``tests/status/test_history.py``): a week is 2016 rows, about 90 kB per series, and at
most ``MAX_SERIES`` series are kept, so the file stays below about 20 MB even on a box
with every sensor there is (the simulated box with all 14 sensors and a camera keeps 72
series, ~6.5 MB; a PM sensor, a climate sensor and a microphone about 15, ~1.4 MB).

Buckets fill in memory and completed ones are written once a minute, so an SD card
sees one small transaction a minute. The history is disposable: a damaged file is
deleted and started afresh, and a write that fails is logged and forgotten; nothing
here can stop the agent from measuring or publishing.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

BUCKET_MS = 300_000
MAX_SERIES = 200
PRUNE_EVERY_MS = 3_600_000
PAGE_CACHE_KIB = 256
"""SQLite's page cache for the history file. Fixed, because SQLite's default (2 MiB)
would fill over the days the file takes to grow, and the daemon's memory with it; a
plot reads one series' index range (a week is about 100 kB), the writer one minute's
buckets."""
RULES = frozenset({"mean", "energy_mean", "min", "max", "sum"})
"""How a bucket folds its values: as the sampling windows do (``energy_mean`` for sound
levels), plus ``sum`` for counts such as line crossings."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY, sensor TEXT NOT NULL, quantity TEXT NOT NULL,
    unit TEXT NOT NULL, rule TEXT NOT NULL, UNIQUE (sensor, quantity));
CREATE TABLE IF NOT EXISTS points (
    series INTEGER NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL,
    acc REAL, vmin REAL, vmax REAL, lo REAL NOT NULL, hi REAL NOT NULL,
    PRIMARY KEY (series, bucket)) WITHOUT ROWID;
"""
_UPSERT = """
INSERT INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (series, bucket) DO UPDATE SET
    n = n + excluded.n, acc = acc + excluded.acc,
    vmin = min(vmin, excluded.vmin), vmax = max(vmax, excluded.vmax),
    lo = min(lo, excluded.lo), hi = max(hi, excluded.hi)
"""


@dataclass(frozen=True)
class Point:
    """One bucket: its start (epoch ms UTC), value by the series' rule, band, count."""

    time_ms: int
    value: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class Series:
    sensor: str
    quantity: str
    unit: str
    rule: str
    points: list[Point]


@dataclass
class _Bucket:
    index: int
    rule: str
    n: int = 0
    acc: float = 0.0
    vmin: float = math.inf
    vmax: float = -math.inf
    lo: float = math.inf
    hi: float = -math.inf

    def add(self, value: float, low: float, high: float) -> None:
        self.n += 1
        self.acc += 10 ** (value / 10) if self.rule == "energy_mean" else value
        self.vmin, self.vmax = min(self.vmin, value), max(self.vmax, value)
        self.lo, self.hi = min(self.lo, low), max(self.hi, high)

    def merge(self, other: _Bucket) -> None:
        self.n += other.n
        self.acc += other.acc
        self.vmin, self.vmax = min(self.vmin, other.vmin), max(self.vmax, other.vmax)
        self.lo, self.hi = min(self.lo, other.lo), max(self.hi, other.hi)

    def row(self, series_id: int) -> tuple[object, ...]:
        keeps_extremes = self.rule in {"min", "max"}
        return (series_id, self.index, self.n, None if keeps_extremes else self.acc,
                self.vmin if keeps_extremes else None, self.vmax if keeps_extremes else None,
                self.lo, self.hi)

    def point(self) -> Point:
        return Point(self.index * BUCKET_MS, _value(self.rule, self.n, self.acc, self.vmin,
                                                    self.vmax), self.lo, self.hi, self.n)


def _value(rule: str, n: int, acc: float | None, vmin: float | None,
           vmax: float | None) -> float:
    if rule == "min":
        return float(vmin if vmin is not None else math.nan)
    if rule == "max":
        return float(vmax if vmax is not None else math.nan)
    total = acc or 0.0
    if rule == "sum":
        return total
    if rule == "energy_mean":
        return 10 * math.log10(total / n) if total > 0 else math.nan
    return total / n


Key = tuple[str, str]


class History:
    """Thread-safe: the main loop adds and flushes, the page's threads query."""

    def __init__(self, path: Path, days: float,
                 wall_ms: Callable[[], int]) -> None:
        self._path = path
        self._keep_ms = int(days * 86_400_000)
        self._wall_ms = wall_ms
        self._lock = threading.Lock()
        self._meta: dict[Key, tuple[str, str]] = {}
        self._open: dict[Key, _Bucket] = {}
        self._done: list[tuple[Key, _Bucket]] = []
        self._ids: dict[Key, int] = {}
        self._full_logged = False
        self._next_prune_ms = 0
        self._conn = self._connect()

    # -- main loop -----------------------------------------------------------------------

    def add(self, sensor: str, quantity: str, unit: str, rule: str, *, value: float,
            low: float, high: float, utc_ms: int) -> None:
        """Fold one published value into its bucket (``low``/``high``: its window's band)."""
        if rule not in RULES or not math.isfinite(value):
            return
        key = (sensor, quantity)
        index = utc_ms // BUCKET_MS
        with self._lock:
            if key not in self._meta:
                if len(self._meta) >= MAX_SERIES:
                    if not self._full_logged:
                        log.warning("history keeps at most %d series; %s/%s and later ones "
                                    "are not plotted", MAX_SERIES, sensor, quantity)
                        self._full_logged = True
                    return
                self._meta[key] = (unit, rule)
            elif self._meta[key] != (unit, rule):
                self._meta[key] = (unit, rule)
                self._open.pop(key, None)
                self._ids.pop(key, None)  # re-registered, old points of another unit dropped
            bucket = self._open.get(key)
            if bucket is None or bucket.index != index:
                if bucket is not None and bucket.index < index:
                    self._done.append((key, bucket))
                    bucket = None
                if bucket is None:
                    bucket = self._open[key] = _Bucket(index, rule)
                else:  # a late value (wall clock stepped back): its own bucket, merged on write
                    late = _Bucket(index, rule)
                    late.add(value, low, high)
                    self._done.append((key, late))
                    return
            bucket.add(value, low, high)

    def flush(self, everything: bool = False) -> None:
        """Write completed buckets (all of them when ``everything``, at shutdown); prune."""
        with self._lock:
            done, self._done = self._done, []
            if everything:
                done += list(self._open.items())
                self._open.clear()
            if self._conn is None:
                return
            try:
                with self._conn:
                    for key, bucket in done:
                        self._conn.execute(_UPSERT, bucket.row(self._series_id(key)))
                    now = self._wall_ms()
                    if now >= self._next_prune_ms:
                        self._prune(now)
                        self._next_prune_ms = now + PRUNE_EVERY_MS
            except sqlite3.Error as exc:
                log.warning("history not written (%s); the plots will miss %d buckets",
                            exc, len(done))

    def close(self) -> None:
        self.flush(everything=True)
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- any thread ---------------------------------------------------------------------

    def query(self, sensor: str, quantity: str, hours: float) -> Series | None:
        """Buckets of the last ``hours``, oldest first, unflushed ones included."""
        key = (sensor, quantity)
        since = (self._wall_ms() - int(hours * 3_600_000)) // BUCKET_MS
        with self._lock:
            meta = self._meta.get(key)
            stored = self._stored(key, since)
            if stored is not None and meta is not None and stored[0] != meta:
                stored = None  # written under another unit or rule: replaced at next flush
            if meta is None:
                if stored is None:
                    return None
                meta = stored[0]
            unit, rule = meta
            buckets: dict[int, _Bucket] = {}
            for bucket in (stored[1] if stored else []):
                buckets[bucket.index] = bucket
            pending = [b for k, b in self._done if k == key]
            if key in self._open:
                pending.append(self._open[key])
            for bucket in pending:
                if bucket.index < since:
                    continue
                if bucket.index in buckets:
                    merged = _Bucket(bucket.index, rule)
                    merged.merge(buckets[bucket.index])
                    merged.merge(bucket)
                    buckets[bucket.index] = merged
                else:
                    buckets[bucket.index] = bucket
        points = [buckets[i].point() for i in sorted(buckets)]
        return Series(sensor, quantity, unit, rule,
                      [p for p in points if math.isfinite(p.value)])

    def size_bytes(self) -> int:
        """The history file's size (with its write-ahead log), for the page."""
        return sum(p.stat().st_size for p in (self._path, self._wal())
                   if p.exists())

    # -- internals ------------------------------------------------------------------------

    def _wal(self) -> Path:
        return self._path.with_name(self._path.name + "-wal")

    def _connect(self) -> sqlite3.Connection | None:
        for attempt in (1, 2):
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self._path, check_same_thread=False,
                                       isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
                conn.executescript(_SCHEMA)
                for key_id, sensor, quantity in conn.execute(
                        "SELECT id, sensor, quantity FROM series"):
                    self._ids[(sensor, quantity)] = key_id
                return conn
            except sqlite3.DatabaseError as exc:
                if attempt == 2 or not self._path.exists():
                    log.warning("history unavailable (%s); the plots show this run only", exc)
                    return None
                log.warning("history file %s unreadable (%s); starting a new one",
                            self._path, exc)
                for stale in (self._path, self._wal(),
                              self._path.with_name(self._path.name + "-shm")):
                    stale.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("history unavailable (%s); the plots show this run only", exc)
                return None
        return None

    def _series_id(self, key: Key) -> int:
        """The series row, (re)made with the current unit and rule (inside a transaction)."""
        assert self._conn is not None
        known = self._ids.get(key)
        unit, rule = self._meta[key]
        if known is not None:
            return known
        row = self._conn.execute("SELECT id, unit, rule FROM series WHERE sensor = ? AND "
                                 "quantity = ?", key).fetchone()
        if row is not None and (row[1], row[2]) == (unit, rule):
            self._ids[key] = int(row[0])
            return int(row[0])
        if row is not None:  # another unit or rule since: its old points would mislead
            self._conn.execute("DELETE FROM points WHERE series = ?", (row[0],))
            self._conn.execute("DELETE FROM series WHERE id = ?", (row[0],))
        cursor = self._conn.execute(
            "INSERT INTO series (sensor, quantity, unit, rule) VALUES (?, ?, ?, ?)",
            (*key, unit, rule))
        assert cursor.lastrowid is not None
        self._ids[key] = cursor.lastrowid
        return cursor.lastrowid

    def _prune(self, now_ms: int) -> None:
        oldest = (now_ms - self._keep_ms) // BUCKET_MS
        assert self._conn is not None
        self._conn.execute("DELETE FROM points WHERE bucket < ?", (oldest,))
        self._conn.execute("DELETE FROM series WHERE id NOT IN "
                           "(SELECT DISTINCT series FROM points)")
        live = {i for (i,) in self._conn.execute("SELECT id FROM series")}
        self._ids = {key: i for key, i in self._ids.items() if i in live}

    def _stored(self, key: Key, since: int) -> tuple[tuple[str, str], list[_Bucket]] | None:
        if self._conn is None:
            return None
        try:
            row = self._conn.execute("SELECT id, unit, rule FROM series WHERE sensor = ? AND "
                                     "quantity = ?", key).fetchone()
            if row is None:
                return None
            series_id, unit, rule = row
            buckets = []
            for index, n, acc, vmin, vmax, lo, hi in self._conn.execute(
                    "SELECT bucket, n, acc, vmin, vmax, lo, hi FROM points WHERE series = ? "
                    "AND bucket >= ? ORDER BY bucket", (series_id, since)):
                buckets.append(_Bucket(index, rule, n, acc or 0.0,
                                       math.inf if vmin is None else vmin,
                                       -math.inf if vmax is None else vmax, lo, hi))
        except sqlite3.Error as exc:
            log.warning("history not readable (%s)", exc)
            return None
        return (str(unit), str(rule)), buckets
