"""Free disk space for the outbox: a floor it keeps above, and a reserve it can give back.

Why: row and age bounds do not stop a small SD card from filling up (other
programs, logs, a long outage with many sensors). A full disk used to be a
deadlock: every commit failed, measurements piled up in memory, and after a
restart the outbox could not even be opened, although draining it would have
freed the space. Two mechanisms prevent that:

* **A floor** (``min_free_mb``): while the file system has less free space, each
  commit first deletes as many of the oldest rows as it adds (counted as
  dropped, like every other bound), so the database stops growing: SQLite
  reuses the freed pages for the new rows.
* **A reserve** (``reserve_mb``): a file of that size is kept beside the outbox
  while there is room. When SQLite reports the disk full anyway (another
  program filled it), the reserve is deleted and the operation retried, so
  the outbox can still open, commit and drain; the reserve is made again
  once the space is back.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

MB = 1024 * 1024


class DiskSpace:
    """Free-space checks and the reserve file for one directory."""

    def __init__(self, directory: Path, *, min_free_mb: float, reserve_mb: float,
                 statvfs: Callable[[Path], os.statvfs_result] = os.statvfs) -> None:
        self.reserve = directory / "outbox.reserve"
        self._directory = directory
        self._min_free_mb = min_free_mb
        self._reserve_mb = reserve_mb
        self._statvfs = statvfs

    def free_mb(self) -> float:
        """Space an unprivileged process may still use on the directory's file system."""
        stats = self._statvfs(self._directory)
        return stats.f_bavail * stats.f_frsize / MB

    def low(self) -> bool:
        """Below the floor: the outbox must not grow."""
        return self._min_free_mb > 0 and self.free_mb() < self._min_free_mb

    def release(self) -> bool:
        """Delete the reserve to let a write through on a full disk; True if it was there."""
        try:
            self.reserve.unlink()
        except FileNotFoundError:
            return False
        log.warning("disk full: released the %.0f MB reserve beside the outbox",
                    self._reserve_mb)
        return True

    def keep_reserve(self) -> None:
        """Make the reserve when it is missing and the disk has room for it above the floor."""
        if self._reserve_mb <= 0 or self.reserve.exists():
            return
        if self.free_mb() < self._min_free_mb + 2 * self._reserve_mb:
            return
        size = int(self._reserve_mb * MB)
        try:
            fd = os.open(self.reserve, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        except OSError as exc:
            log.warning("cannot make the outbox reserve: %s", exc)
            return
        try:
            try:
                os.posix_fallocate(fd, 0, size)  # real blocks, not a sparse file
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("cannot make the outbox reserve: %s", exc)
            self.reserve.unlink(missing_ok=True)
