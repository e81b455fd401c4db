"""The SQLite outbox: ordering, acks, bounds, and survival of kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.errors import StorageError
from agent.models import Measurement, Quality, Stats
from agent.storage import Outbox
from agent.storage.outbox import PAGE_CACHE_KIB

NOW_MS = 1_800_000_000_000


def measurement(i: int, utc_ms: int = NOW_MS) -> Measurement:
    return Measurement("pm", "pm2_5", float(i), "ug/m3", utc_ms, float(i),
                       frozenset({Quality.WARMING_UP}) if i % 2 else frozenset(),
                       Stats(i - 1.0, i + 1.0, 3, 60.0), (("calibration_scale", 0.9),))


def open_outbox(path: Path, boot: str = "b" * 32, *, max_rows: int = 1000,
                now_ms: int = NOW_MS) -> Outbox:
    return Outbox(path, boot, max_rows=max_rows, max_age_days=1, wall_ms=lambda: now_ms,
                  monotonic=lambda: 100.0)


def test_rows_round_trip_in_order_with_per_boot_seq(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.sqlite")
    box.add([measurement(i) for i in range(1, 6)])
    assert box.claim(0, 10) == [], "nothing is visible before commit"
    assert box.commit() == 5
    records = box.claim(0, 10)
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[2].measurement == measurement(3)
    assert box.claim(records[1].row_id, 2)[0].seq == 3


def test_a_counting_interval_keeps_its_window_without_statistics(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.sqlite")
    count = Measurement("street", "line_door_in", 4.0, "{person}", NOW_MS, 1.0, window_s=60.0)
    alert = Measurement("street", "zone_kerb_density_alert", 1.0, "1", NOW_MS, 1.0)
    box.add([count, alert, measurement(1)])
    box.commit()
    stored = [r.measurement for r in box.claim(0, 10)]
    assert stored == [count, alert, measurement(1)]
    assert [m.span_s for m in stored] == [60.0, None, 60.0]


def test_acked_rows_disappear_and_are_not_claimed_again(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.sqlite")
    box.add([measurement(i) for i in range(1, 6)])
    box.commit()
    first = box.claim(0, 3)
    box.ack(r.row_id for r in first)
    assert [r.seq for r in box.claim(0, 10)] == [4, 5], "acked but uncommitted rows are hidden"
    box.commit()
    assert box.stats().depth == 2
    box.close()
    reopened = open_outbox(tmp_path / "o.sqlite", "c" * 32)
    assert [r.seq for r in reopened.claim(0, 10)] == [4, 5]
    assert reopened.stats().depth == 2


def test_row_ids_are_never_reused_after_the_outbox_empties(tmp_path: Path) -> None:
    """The forwarder's cursor relies on new rows sorting after every row sent before."""
    box = open_outbox(tmp_path / "o.sqlite")
    box.add([measurement(1), measurement(2)])
    box.commit()
    sent = box.claim(0, 10)
    box.ack(r.row_id for r in sent)
    box.commit()
    box.add([measurement(3)])
    box.commit()
    (fresh,) = box.claim(sent[-1].row_id, 10)
    assert fresh.row_id > sent[-1].row_id


def test_seq_restarts_per_boot_and_old_rows_keep_their_boot(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    first = open_outbox(path, "a" * 32)
    first.add([measurement(1), measurement(2)])
    first.close()
    second = open_outbox(path, "b" * 32)
    second.add([measurement(3)])
    second.commit()
    assert [(r.boot_id[0], r.seq) for r in second.claim(0, 10)] == [("a", 1), ("a", 2), ("b", 1)]


def test_row_bound_drops_oldest_and_counts(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.sqlite", max_rows=100)
    box.add([measurement(i) for i in range(1, 151)])
    box.commit()
    stats = box.stats()
    assert stats.depth == 100
    assert stats.dropped_total == 50
    assert box.claim(0, 1)[0].seq == 51
    box.close()
    assert open_outbox(tmp_path / "o.sqlite", max_rows=100).stats().dropped_total == 50


DAY_S = 86_400
DAY_MS = 1000 * DAY_S
EPOCH_1970_MS = 3_600_000  # a Pi without RTC boots at 1970 until NTP steps its clock


class Clocks:
    """The outbox's wall and monotonic clocks, stepped by hand (nothing patched globally)."""

    def __init__(self, wall_ms: int, monotonic_s: float) -> None:
        self.wall_ms = wall_ms
        self.monotonic_s = monotonic_s

    def advance(self, seconds: float) -> None:
        """Real time passing: both clocks move together."""
        self.wall_ms += int(seconds * 1000)
        self.monotonic_s += seconds

    def outbox(self, path: Path, boot: str, kernel_boot: str = "kernel-1") -> Outbox:
        return Outbox(path, boot, max_rows=10**6, max_age_days=1, wall_ms=lambda: self.wall_ms,
                      monotonic=lambda: self.monotonic_s, kernel_boot=kernel_boot)

    def rows(self, box: Outbox, count: int) -> None:
        """``count`` measurements stamped now by both clocks, committed."""
        box.add(Measurement("pm", "pm2_5", 1.0, "ug/m3", self.wall_ms, self.monotonic_s)
                for _ in range(count))
        box.commit()


def test_ntp_step_from_1970_prunes_nothing(tmp_path: Path) -> None:
    clocks = Clocks(EPOCH_1970_MS, monotonic_s=20.0)
    box = clocks.outbox(tmp_path / "o.sqlite", "a" * 32)
    clocks.rows(box, 360)  # sampled before NTP synced: stamped 1970
    clocks.wall_ms = NOW_MS  # NTP steps the clock 56 years forward
    clocks.advance(60)
    clocks.rows(box, 1)
    assert (box.stats().depth, box.stats().dropped_total) == (361, 0)


def test_wall_clock_jump_of_31_days_prunes_nothing_even_after_a_restart(tmp_path: Path) -> None:
    clocks = Clocks(NOW_MS, monotonic_s=1000.0)
    box = clocks.outbox(tmp_path / "o.sqlite", "a" * 32)
    clocks.rows(box, 500)
    clocks.wall_ms += 31 * DAY_MS  # a spoofed NTP source, during an outage
    clocks.advance(5)
    clocks.rows(box, 1)
    assert (box.stats().depth, box.stats().dropped_total) == (501, 0)
    box.close()
    clocks.advance(30)  # the agent restarts on the same kernel boot, after the jump
    again = clocks.outbox(tmp_path / "o.sqlite", "b" * 32)
    clocks.rows(again, 1)
    assert (again.stats().depth, again.stats().dropped_total) == (502, 0)


def test_real_age_overrun_still_prunes_and_is_counted(tmp_path: Path) -> None:
    clocks = Clocks(NOW_MS, monotonic_s=1000.0)
    box = clocks.outbox(tmp_path / "o.sqlite", "a" * 32)
    clocks.rows(box, 50)
    clocks.advance(DAY_S / 2)
    clocks.rows(box, 20)
    clocks.advance(DAY_S / 2 + 1)  # the first 50 are now a day and a second old
    clocks.rows(box, 1)
    assert (box.stats().depth, box.stats().dropped_total) == (21, 50)
    assert box.claim(0, 1)[0].seq == 51


def test_rows_of_an_earlier_kernel_boot_age_on_the_wall_clock(tmp_path: Path) -> None:
    """After a reboot the monotonic clock restarts: only a plausible wall clock can tell."""
    clocks = Clocks(NOW_MS, monotonic_s=5000.0)
    before_reboot = clocks.outbox(tmp_path / "o.sqlite", "a" * 32, kernel_boot="kernel-0")
    clocks.rows(before_reboot, 10)
    clocks.wall_ms = EPOCH_1970_MS
    clocks.rows(before_reboot, 5)  # stamped by an unsynced clock: their age is unknown
    before_reboot.close()
    clocks.wall_ms = NOW_MS + 2 * DAY_MS  # powered off for two days
    clocks.monotonic_s = 30.0
    after = clocks.outbox(tmp_path / "o.sqlite", "b" * 32, kernel_boot="kernel-1")
    clocks.rows(after, 1)
    assert (after.stats().depth, after.stats().dropped_total) == (6, 10)


def test_wall_clock_step_suspends_wall_clock_pruning(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    clocks = Clocks(NOW_MS, monotonic_s=5000.0)
    before_reboot = clocks.outbox(tmp_path / "o.sqlite", "a" * 32, kernel_boot="kernel-0")
    clocks.rows(before_reboot, 10)
    before_reboot.close()
    clocks.monotonic_s = 30.0
    after = clocks.outbox(tmp_path / "o.sqlite", "b" * 32, kernel_boot="kernel-1")
    clocks.rows(after, 1)
    clocks.wall_ms += 31 * DAY_MS  # the clock is stepped while this agent runs
    clocks.advance(1)
    clocks.rows(after, 1)
    assert (after.stats().depth, after.stats().dropped_total) == (12, 0)
    assert "wall clock stepped" in caplog.text


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    open_outbox(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StorageError, match="newer"):
        open_outbox(path)


def test_wal_and_full_sync_are_on(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.sqlite")
    assert box._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert box._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_the_page_cache_has_a_fixed_size(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.sqlite")
    assert box._conn.execute("PRAGMA cache_size").fetchone()[0] == -PAGE_CACHE_KIB


def test_every_commit_inserts_through_one_statement_whatever_its_row_count(
        tmp_path: Path) -> None:
    # A statement per row count would fill the connection's statement cache with up to
    # 128 prepared INSERTs of hundreds of parameters; one is prepared once.
    box = open_outbox(tmp_path / "o.sqlite")
    traced: list[str] = []
    box._conn.set_trace_callback(traced.append)
    for count in range(1, 31):
        box.add(measurement(i) for i in range(count))
        box.commit()
    box._conn.set_trace_callback(None)
    inserts = [s for s in traced if s.startswith("INSERT INTO outbox ")]
    assert len(inserts) == sum(range(1, 31))  # the one-row statement, stepped per row
    assert not [s for s in traced if "sqlite_master" in s]
    assert len(box.claim(0, 1000)) == sum(range(1, 31))


WRITER = """
import sys, time
from pathlib import Path
from agent.errors import StorageError
from agent.models import Measurement
from agent.storage import Outbox
from agent.storage.outbox import PAGE_CACHE_KIB
box = Outbox(Path(sys.argv[1]), sys.argv[2], max_rows=10**7, max_age_days=3650)
i = 0
while True:
    box.add([Measurement("pm", "pm2_5", float(i + k), "ug/m3", time.time_ns() // 10**6, 0.0)
             for k in range(50)])
    i += 50
    box.commit()
    rows = box.claim(0, 10**7)
    box.ack(r.row_id for r in rows[: len(rows) // 2])
    print(box.boot_id, i, flush=True)   # everything up to seq i is committed
"""


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing_committed(tmp_path: Path) -> None:
    """Kill the writer mid-commit repeatedly: integrity stays ok, committed rows stay."""
    path = tmp_path / "o.sqlite"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    committed: dict[str, int] = {}
    for run in range(5):
        boot = f"{run:032x}"
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(path), boot],
                                 stdout=subprocess.PIPE, text=True, env=env)
        assert child.stdout is not None
        deadline = time.monotonic() + 0.3 + run * 0.17
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if line:
                committed[boot] = int(line.split()[1])
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            # Unacked rows of every committed batch are still there: the latest seq
            # reported committed for this boot must be present (acks only take the first half).
            if boot in committed:
                top = conn.execute("SELECT max(seq) FROM outbox WHERE boot_id = ?",
                                   (boot,)).fetchone()[0]
                assert top is not None and top >= committed[boot]
    assert len(committed) >= 3, "the writer should have committed in most runs"
