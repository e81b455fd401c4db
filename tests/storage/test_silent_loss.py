"""A loss SQLite does not report (a damaged WAL frame) is detected and counted."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from agent.storage import Outbox
from agent.storage.watermark import mark_path

BATCHES = 3
ROWS = 1000
WRITER = """
import sys, time
from pathlib import Path
from agent.models import Measurement
from agent.storage import Outbox
box = Outbox(Path(sys.argv[1]), "a" * 32, max_rows=10**7, max_age_days=3650)
for batch in range(int(sys.argv[2])):
    box.add([Measurement("pm", "pm2_5", float(i), "ug/m3", time.time_ns() // 10**6, 0.0)
             for i in range(int(sys.argv[3]))])
    box.commit()   # one transaction per batch
print("committed", flush=True)
time.sleep(600)    # killed here: the WAL is never checkpointed
"""
WAL_HEADER = 32
FRAME_HEADER = 24


def crash_after_commits(path: Path) -> None:
    """Commit BATCHES × ROWS in a writer that is then killed with SIGKILL."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(BATCHES),
                              str(ROWS)], stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    try:
        assert child.stdout.readline() == "committed\n"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def copy_outbox(source: Path, target_dir: Path) -> Path:
    """The database, its WAL and its mark, as a crashed box leaves them (no -shm)."""
    target_dir.mkdir()
    for name in (source.name, source.name + "-wal", mark_path(source).name):
        shutil.copyfile(source.with_name(name), target_dir / name)
    return target_dir / source.name


def commit_frames(wal: bytes) -> list[int]:
    """Byte offsets of the WAL's commit frames (a frame header's second word is the
    database size after the commit; zero in every other frame)."""
    page_size = int.from_bytes(wal[8:12], "big")
    offsets = range(WAL_HEADER, len(wal), FRAME_HEADER + page_size)
    return [at for at in offsets if int.from_bytes(wal[at + 4:at + 8], "big")]


def flip_word_after(wal_path: Path, commit_index: int) -> None:
    """Flip one 32-bit word in the page of the first frame after that commit frame."""
    wal = bytearray(wal_path.read_bytes())
    page_size = int.from_bytes(wal[8:12], "big")
    word = commit_frames(bytes(wal))[commit_index] + FRAME_HEADER + page_size \
        + FRAME_HEADER + page_size // 2
    wal[word:word + 4] = bytes(b ^ 0xFF for b in wal[word:word + 4])
    wal_path.write_bytes(bytes(wal))


def open_copy(path: Path) -> Outbox:
    return Outbox(path, "b" * 32, max_rows=10**7, max_age_days=3650)


def test_one_flipped_word_in_the_wal_is_a_counted_loss_not_a_silent_one(
        tmp_path: Path) -> None:
    original = tmp_path / "box" / "outbox.sqlite"
    original.parent.mkdir()
    crash_after_commits(original)
    intact, damaged = (copy_outbox(original, tmp_path / name) for name in ("intact", "damaged"))
    frames = commit_frames((damaged.parent / "outbox.sqlite-wal").read_bytes())
    assert len(frames) >= BATCHES, "each batch is a commit in the WAL, none checkpointed"
    flip_word_after(damaged.parent / "outbox.sqlite-wal", len(frames) - BATCHES)

    # What SQLite says: nothing wrong, and a third of the rows.
    with sqlite3.connect(damaged) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == ROWS
    conn.close()

    box = open_copy(damaged)
    stats = box.stats()
    assert (stats.depth, stats.lost_total, stats.dropped_total) == (ROWS, 2 * ROWS, 0)
    assert box.previous_boot() == ("a" * 32, BATCHES * ROWS), \
        "the lost boot's last seq, so receivers see the gap"
    box.close()

    again = open_copy(damaged)
    assert again.stats().lost_total == 2 * ROWS, "counted once, not at every start"
    again.close()

    clean = open_copy(intact)
    assert (clean.stats().depth, clean.stats().lost_total) == (BATCHES * ROWS, 0)
    clean.close()


def test_ids_go_on_above_the_lost_ones(tmp_path: Path) -> None:
    """A row id once given out is never reused, lost or not (the sinks' cursors)."""
    original = tmp_path / "box" / "outbox.sqlite"
    original.parent.mkdir()
    crash_after_commits(original)
    damaged = copy_outbox(original, tmp_path / "damaged")
    wal = damaged.parent / "outbox.sqlite-wal"
    flip_word_after(wal, len(commit_frames(wal.read_bytes())) - BATCHES)
    box = open_copy(damaged)
    box.add([box.claim(0, 1)[0].measurement])
    box.commit()
    assert box.claim(ROWS, 10)[0].row_id == BATCHES * ROWS + 1
    box.close()
