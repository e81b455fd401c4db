"""The outbox's high-water mark, kept outside SQLite, so a loss inside SQLite shows.

Why: SQLite's WAL checksums every frame, and on recovery it keeps only the frames
before the first bad one. One flipped word in the WAL of a box that crashed (power
cut, kill -9) therefore takes every transaction committed after it, thousands of
measurements, and leaves a database that passes ``integrity_check``: nothing in the
database can say that it once held more.

So after every commit that added rows, the highest row id given out (and the boot
and seq of the newest row) is written to a small file beside the outbox,
``<outbox>-mark``, and flushed to the card. Row ids only grow (AUTOINCREMENT), so on
the next open a database whose highest id is below the mark has lost the rows between:
:func:`reconcile` counts them in ``meta.lost_total``, makes ids continue above the
mark and corrects that boot's last seq, so receivers can see the gap. The mark is
written after the commit it describes, so a crash between the two leaves it behind
the database, never ahead: it cannot report a loss that did not happen.

The line has a fixed width and is overwritten in place (one sector: no torn write in
practice), with a CRC so a damaged mark is ignored with a warning rather than believed.
Cost: one small write and fdatasync per commit that added rows (at most one a second).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import zlib
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_BOOT_WIDTH = 64


@dataclass(frozen=True)
class Mark:
    """What the outbox had committed when the mark was written."""

    top_id: int
    """The highest row id ever given out."""
    boot_id: str
    last_seq: int
    """The seq of the newest row, in ``boot_id``."""


def mark_path(outbox: Path) -> Path:
    return outbox.with_name(outbox.name + "-mark")


def _encode(mark: Mark) -> bytes:
    body = f"{mark.top_id:020d} {mark.last_seq:020d} {mark.boot_id[:_BOOT_WIDTH]:<{_BOOT_WIDTH}}"
    return f"{body} {zlib.crc32(body.encode()):08x}\n".encode()


def read_mark(path: Path) -> Mark | None:
    """The mark in ``path``; None when there is none or it is damaged (with a warning)."""
    try:
        text = path.read_bytes().decode("ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("outbox mark %s unreadable (%s): silent loss cannot be checked this time",
                    path, exc)
        return None
    body, _, crc = text.rstrip("\n").rpartition(" ")
    fields = body.split()
    if crc != f"{zlib.crc32(body.encode()):08x}" or len(fields) != 3:
        log.warning("outbox mark %s is damaged: silent loss cannot be checked this time", path)
        return None
    return Mark(int(fields[0]), fields[2], int(fields[1]))


class MarkFile:
    """Writes the mark in place and flushes it; one descriptor for the outbox's life.

    Opened at the first write, not with the outbox: a disk too full to create a file
    must not stop an outbox from opening and draining. A write that fails (disk full)
    is logged once per run of failures; the outbox goes on, and the next start cannot
    check for a silent loss since the last good mark (it reports none rather than a
    false one, because the mark only ever lags the database).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._failing = False

    def write(self, mark: Mark) -> None:
        """Record ``mark`` durably."""
        data = _encode(mark)
        try:
            if self._fd is None:
                self._fd = self._open()
            os.pwrite(self._fd, data, 0)
            os.ftruncate(self._fd, len(data))
            os.fdatasync(self._fd)
        except OSError as exc:
            if not self._failing:
                log.warning("cannot write the outbox mark %s: %s", self.path, exc)
            self._failing = True
            return
        self._failing = False

    def _open(self) -> int:
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if created:  # the file's name must survive a power cut as well as its contents
            try:
                directory = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
            except OSError:
                os.close(fd)
                raise
        return fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def reconcile(conn: sqlite3.Connection, mark: Mark) -> int:
    """Count, inside the caller's transaction, rows the database lost since ``mark``.

    Returns how many ids between the database's highest and the mark's are gone.
    Afterwards the database agrees with the mark, so the loss is counted once.
    """
    top = conn.execute("SELECT coalesce(max(seq), 0) FROM sqlite_sequence "
                       "WHERE name = 'outbox'").fetchone()[0]
    lost = mark.top_id - int(top)
    if lost <= 0:
        return 0
    conn.execute("INSERT OR IGNORE INTO meta VALUES ('lost_total', 0)")
    conn.execute("UPDATE meta SET value = value + ? WHERE key = 'lost_total'", (lost,))
    conn.execute("DELETE FROM sqlite_sequence WHERE name = 'outbox'")
    conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?)",
                 (mark.top_id,))
    # The boot's row may be among what was lost; its kernel boot is then unknown ('').
    conn.execute("INSERT OR IGNORE INTO boots (boot_id, kernel_boot) VALUES (?, '')",
                 (mark.boot_id,))
    conn.execute("UPDATE boots SET last_seq = max(last_seq, ?) WHERE boot_id = ?",
                 (mark.last_seq, mark.boot_id))
    return lost
