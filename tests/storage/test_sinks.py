"""Several sinks on one outbox: own positions, nothing deleted early, bounds still hold.

Why: a slow or failing sink (Sensor.Community down for a day) must neither hold
back another (MQTT) nor lose rows the other has already delivered; and the
outbox's bounds must still cap the disk when one sink lags for ever.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent.models import Measurement
from agent.storage import Outbox
from agent.storage.schema import SCHEMA_VERSION

NOW_MS = 1_800_000_000_000
SINKS = ("mqtt", "sensor_community")


def open_outbox(path: Path, *, max_rows: int = 1000,
                sinks: tuple[str, ...] = SINKS) -> Outbox:
    return Outbox(path, "b" * 32, max_rows=max_rows, max_age_days=1, wall_ms=lambda: NOW_MS,
                  monotonic=lambda: 100.0, sinks=sinks)


def fill(box: Outbox, count: int) -> None:
    box.add(Measurement("pm", "pm2_5", float(i), "ug/m3", NOW_MS, 100.0) for i in range(count))
    box.commit()


def seqs(box: Outbox, sink: str) -> list[int]:
    return [r.seq for r in box.claim(0, 10**6, sink)]


def stored(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [seq for (seq,) in conn.execute("SELECT seq FROM outbox ORDER BY id")]


def test_a_row_leaves_only_when_every_sink_has_it(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.sqlite")
    fill(box, 6)
    box.ack((r.row_id for r in box.claim(0, 4, "mqtt")), "mqtt")
    assert seqs(box, "mqtt") == [5, 6], "mqtt does not see what it acknowledged"
    assert seqs(box, "sensor_community") == [1, 2, 3, 4, 5, 6], "the other sink still does"
    box.commit()
    assert stored(tmp_path / "o.sqlite") == [1, 2, 3, 4, 5, 6], "nothing deleted early"
    assert box.stats().depth == 6
    box.ack((r.row_id for r in box.claim(0, 2, "sensor_community")), "sensor_community")
    assert box.stats().depth == 4, "rows both sinks have are no longer counted as waiting"
    box.commit()
    assert stored(tmp_path / "o.sqlite") == [3, 4, 5, 6]
    assert seqs(box, "mqtt") == [5, 6] and seqs(box, "sensor_community") == [3, 4, 5, 6]


def test_a_stuck_sink_holds_back_no_other_and_positions_survive_a_restart(
        tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = open_outbox(path)
    for _ in range(5):  # mqtt keeps up while sensor_community delivers nothing
        fill(box, 10)
        box.ack((r.row_id for r in box.claim(0, 100, "mqtt")), "mqtt")
        box.commit()
    assert seqs(box, "mqtt") == []
    assert box.sink_figures("mqtt").backlog == 0
    assert box.sink_figures("sensor_community").backlog == 50
    box.close()
    reopened = open_outbox(path)
    assert seqs(reopened, "mqtt") == [], "mqtt's position was committed: nothing resent"
    assert len(seqs(reopened, "sensor_community")) == 50, "the stuck sink lost nothing"


def test_a_position_moves_only_over_an_unbroken_run_of_acknowledged_rows(
        tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = open_outbox(path)
    fill(box, 6)
    records = box.claim(0, 6, "mqtt")
    box.ack([r.row_id for r in records[3:]], "mqtt")  # PUBACKs of a later message first
    box.commit()
    box.close()
    assert seqs(open_outbox(path), "mqtt") == [1, 2, 3, 4, 5, 6], \
        "rows before the gap were never confirmed: after a restart they are sent again"


def test_with_one_sink_acknowledged_rows_leave_at_the_next_commit_as_before(
        tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = open_outbox(path, sinks=("mqtt",))
    fill(box, 6)
    records = box.claim(0, 6)
    box.ack(r.row_id for r in records[3:])  # out of order, as several messages in flight
    box.commit()
    assert stored(path) == [1, 2, 3]


def test_the_row_bound_drops_what_a_lagging_sink_never_sent_and_counts_it(
        tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = open_outbox(path, max_rows=100)
    fill(box, 80)
    box.ack((r.row_id for r in box.claim(0, 10**6, "mqtt")), "mqtt")
    fill(box, 50)  # 130 stored, sensor_community has none of them
    assert len(stored(path)) == 100
    stats = box.stats()
    assert stats.dropped_total == 30
    assert box.sink_figures("sensor_community").dropped_total == 30
    assert box.sink_figures("mqtt").dropped_total == 0, "mqtt had delivered the dropped rows"
    assert seqs(box, "sensor_community")[0] == 31
    box.close()
    assert open_outbox(path).sink_figures("sensor_community").dropped_total == 30, \
        "the per-sink count survives a restart"


def test_a_row_one_sink_cannot_deliver_is_kept_aside_and_still_goes_to_the_other(
        tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = open_outbox(path)
    fill(box, 3)
    (middle,) = [r for r in box.claim(0, 3, "mqtt") if r.seq == 2]
    assert box.set_aside([middle.row_id], "too large", "mqtt") == 1
    assert seqs(box, "mqtt") == [1, 3]
    assert seqs(box, "sensor_community") == [1, 2, 3]
    assert box.stats().poison_total == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT seq, reason FROM poison").fetchall() == [(2, "mqtt: too large")]


V4_SCHEMA = """
CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, boot_id TEXT NOT NULL,
    seq INTEGER NOT NULL, sensor TEXT NOT NULL, quantity TEXT NOT NULL, value REAL NOT NULL,
    unit TEXT NOT NULL, utc_ms INTEGER NOT NULL, monotonic_s REAL, flags TEXT, min REAL,
    max REAL, n INTEGER, window_s REAL, meta TEXT);
CREATE INDEX idx_outbox_utc_ms ON outbox (utc_ms);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER);
INSERT INTO meta VALUES ('dropped_total', 7), ('poison_total', 1);
CREATE TABLE boots (boot_id TEXT PRIMARY KEY, kernel_boot TEXT NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0);
CREATE INDEX outbox_monotonic_s ON outbox(monotonic_s);
CREATE TABLE poison (id, boot_id, seq, sensor, quantity, value, unit, utc_ms, monotonic_s,
    flags, min, max, n, window_s, meta, reason TEXT NOT NULL);
PRAGMA user_version = 4;
"""


def test_a_schema_4_outbox_is_migrated_and_every_sink_gets_all_it_held(
        tmp_path: Path) -> None:
    """Up to schema 4 a row left on its PUBACK: whatever is stored is unsent everywhere."""
    path = tmp_path / "o.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(V4_SCHEMA)
        conn.execute("INSERT INTO boots VALUES ('a', 'kernel-0', 3)")
        conn.executemany(
            "INSERT INTO outbox (boot_id, seq, sensor, quantity, value, unit, utc_ms, "
            "monotonic_s) VALUES ('a', ?, 'pm', 'pm2_5', 1.0, 'ug/m3', ?, 1.0)",
            [(seq, NOW_MS) for seq in (1, 2, 3)])
    box = open_outbox(path)
    assert seqs(box, "mqtt") == [1, 2, 3] and seqs(box, "sensor_community") == [1, 2, 3]
    assert (box.stats().dropped_total, box.stats().poison_total) == (7, 1)
    assert box.previous_boot() == ("a", 3)
    box.ack((r.row_id for r in box.claim(0, 10, "mqtt")), "mqtt")
    box.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        assert conn.execute("SELECT sink, position FROM sink_positions ORDER BY sink"
                            ).fetchall() == [("mqtt", 3), ("sensor_community", 0)]
    assert seqs(open_outbox(path), "sensor_community") == [1, 2, 3]
