"""A damaged outbox is set aside, what can be read is saved, and the agent goes on.

The damage is real: garbage bytes, a file cut in half, a page overwritten while the
outbox is open (what a failing SD card does), on real SQLite files.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from agent.models import Measurement
from agent.storage import Outbox

NOW_MS = 1_800_000_000_000
PAGE = 4096


def filled(path: Path, rows: int) -> None:
    box = Outbox(path, "a" * 32, max_rows=10**6, max_age_days=30)
    for start in range(0, rows, 1000):
        box.add(Measurement("pm", "pm2_5", i + 0.5, "ug/m3", NOW_MS, 0.0)
                for i in range(start, start + 1000))
        box.commit()
    box.close()


def reopened(path: Path) -> Outbox:
    return Outbox(path, "b" * 32, max_rows=10**6, max_age_days=30)


def still_works(box: Outbox) -> None:
    box.add([Measurement("pm", "pm2_5", 1.0, "ug/m3", NOW_MS, 0.0)])
    box.commit()
    assert box.claim(0, 10**6)[-1].measurement.value == 1.0


def aside(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.glob(f"{path.name}.corrupt-*"))


def test_a_file_of_garbage_is_set_aside_and_a_fresh_outbox_starts(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(os.urandom(64 * 1024))
    box = reopened(path)
    assert box.stats().quarantined_total == 1 and box.stats().depth == 0
    (kept,) = aside(path)
    assert (tmp_path / kept).stat().st_size == 64 * 1024, "kept untouched for forensics"
    still_works(box)
    box.close()
    assert reopened(path).stats().quarantined_total == 1, "the count survives a restart"


def test_a_truncated_file_keeps_what_can_be_read(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    filled(path, 20_000)
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)
    box = reopened(path)
    stats = box.stats()
    assert stats.quarantined_total == 1 and aside(path)
    assert 0 < stats.depth < 20_000, "the readable half was saved"
    still_works(box)


def test_a_damaged_page_is_recovered_and_the_loss_counted(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    filled(path, 20_000)
    # The table page that holds the row of value 10000.5 (a big-endian double in the
    # record): garbage. Indexes stay intact, so the outbox opens and finds the damage
    # when it reads the rows, as on a card that fails under a running box.
    at = path.read_bytes().index(struct.pack(">d", 10000.5)) // PAGE
    with path.open("r+b") as f:
        f.seek(at * PAGE)
        f.write(os.urandom(PAGE))
    box = reopened(path)  # the damage is found where it lies: by a read or by a write
    for _ in range(2):
        box.claim(0, 10**6)
        box.add([Measurement("pm", "pm2_5", 2.0, "ug/m3", NOW_MS, 0.0)])
        box.commit()
    stats = box.stats()
    assert stats.quarantined_total == 1, "recovered, not failing at every commit"
    assert 18_000 <= stats.depth < 20_002, "only the damaged range was lost"
    assert stats.dropped_total > 0, "and the loss is counted"
    top_before = box.claim(0, 10**6)[-1].row_id
    still_works(box)
    assert box.claim(0, 10**6)[-1].row_id > top_before, "ids continue above the old ones"
