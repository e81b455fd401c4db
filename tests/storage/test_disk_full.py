"""A full disk never stops the outbox: a free-space floor, a reserve, and opening a full disk.

Each scenario runs in a child process inside its own mount namespace
(``unshare --mount --map-root-user``) on a small tmpfs, so the disk really fills up
and nothing outside the test is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.vision.streams import REPO

PRELUDE = textwrap.dedent("""
    import json, os, subprocess, sys, time
    from pathlib import Path
    from agent.errors import StorageError
    from agent.models import Measurement
    from agent.storage import Outbox
    from agent.storage.space import DiskSpace

    here = Path(sys.argv[1])
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(here)], check=True)

    def batch(start, n=500):
        now = time.time_ns() // 1_000_000
        return [Measurement("pm", "pm2_5", float(i), "ug/m3", now, time.monotonic())
                for i in range(start, start + n)]

    def outbox(min_free_mb, reserve_mb):
        space = DiskSpace(here, min_free_mb=min_free_mb, reserve_mb=reserve_mb)
        return Outbox(here / "outbox.sqlite", "b" * 32, max_rows=10**7, max_age_days=30,
                      space=space), space
""")

FLOOR = PRELUDE + textwrap.dedent("""
    box, space = outbox(min_free_mb=4, reserve_mb=1)
    errors = 0
    for k in range(300):  # 150 000 rows, ~30 MB, into a 16 MB disk
        box.add(batch(k * 500))
        try:
            box.commit()
        except StorageError:
            errors += 1
    stats = box.stats()
    newest = box.claim(0, 10**6)[-1].seq
    print(json.dumps({"errors": errors, "dropped": stats.dropped_total, "depth": stats.depth,
                      "free_mb": space.free_mb(), "newest": newest}))
""")

FILLED = PRELUDE + textwrap.dedent("""
    box, space = outbox(min_free_mb=0.5, reserve_mb=2)
    box.add(batch(0, 2000))
    box.commit()
    reserve_kept = space.reserve.exists()
    with open(here / "junk", "wb") as junk:  # another program fills the disk to the brim
        try:
            while True:
                junk.write(b"x" * 65536)
                junk.flush()
        except OSError:
            pass
    box.add(batch(2000, 2000))
    box.commit()  # the disk is full: the reserve is given back, the commit goes through
    box.close()
    reopened, _ = outbox(min_free_mb=0.5, reserve_mb=2)  # a restart on the full disk
    rows = reopened.claim(0, 10**6)
    reopened.ack(r.row_id for r in rows[:1000])
    reopened.commit()
    print(json.dumps({"reserve_kept": reserve_kept, "reserve_now": space.reserve.exists(),
                      "rows": len(rows), "depth": reopened.stats().depth,
                      "newest": rows[-1].seq}))
""")


def run(tmp_path: Path, script: str) -> dict[str, object]:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("unshare (util-linux) is missing")
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    result = subprocess.run(
        [unshare, "--mount", "--map-root-user", sys.executable, "-c", script, str(mountpoint)],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.slow  # 150 000 rows into a real 16 MB tmpfs, in a child process
def test_below_the_free_space_floor_the_oldest_give_way_and_commits_never_fail(
        tmp_path: Path) -> None:
    found = run(tmp_path, FLOOR)
    assert found["errors"] == 0, "no commit failed"
    assert found["dropped"] > 0, "the oldest were dropped, and counted"
    assert found["free_mb"] > 1, "the disk never filled up"
    assert found["newest"] == 150_000, "the newest measurement is kept"
    assert found["depth"] + found["dropped"] == 150_000, "every row is kept or counted"


def test_a_disk_filled_by_someone_else_still_commits_opens_and_drains(tmp_path: Path) -> None:
    found = run(tmp_path, FILLED)
    assert found["reserve_kept"] and not found["reserve_now"], "the reserve was given back"
    assert found["rows"] >= 2000 and found["newest"] == 4000, "the commit on a full disk held"
    assert found["depth"] == found["rows"] - 1000, "draining deletes on the full disk"
