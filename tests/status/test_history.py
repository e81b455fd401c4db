"""The status page's history: 5-minute buckets, bounded in days and series, disposable."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from agent.status import history as history_module
from agent.status.history import BUCKET_MS, PAGE_CACHE_KIB, History

DAY_MS = 86_400_000
START = 1_800_000_000_000 // BUCKET_MS * BUCKET_MS  # a bucket boundary in 2027


class WallClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


def make(tmp_path: Path, clock: WallClock, days: float = 7) -> History:
    return History(tmp_path / "history.sqlite", days, clock)


def add(h: History, value: float, at_ms: int, rule: str = "mean", *, quantity: str = "pm2_5",
        low: float | None = None, high: float | None = None) -> None:
    h.add("pm", quantity, "ug/m3", rule, value=value, low=value if low is None else low,
          high=value if high is None else high, utc_ms=at_ms)


def test_a_bucket_folds_its_values_by_rule(tmp_path: Path, clock: WallClock) -> None:
    h = make(tmp_path, clock)
    for rule in ("mean", "energy_mean", "min", "max", "sum"):
        for i, v in enumerate((50.0, 60.0, 70.0)):
            add(h, v, START + i * 60_000, rule, quantity=rule, low=v - 1, high=v + 1)
    clock.now = START + 4 * 60_000
    got = {rule: h.query("pm", rule, 24) for rule in ("mean", "energy_mean", "min", "max", "sum")}
    assert got["mean"] is not None and got["mean"].points[0].value == pytest.approx(60.0)
    energy = 10 * math.log10((10 ** 5 + 10 ** 6 + 10 ** 7) / 3)
    assert got["energy_mean"].points[0].value == pytest.approx(energy)  # type: ignore[union-attr]
    assert got["min"].points[0].value == 50.0  # type: ignore[union-attr]
    assert got["max"].points[0].value == 70.0  # type: ignore[union-attr]
    assert got["sum"].points[0].value == 180.0  # type: ignore[union-attr]
    point = got["mean"].points[0]
    assert (point.time_ms, point.low, point.high, point.n) == (START, 49.0, 71.0, 3)


def test_flushed_and_pending_buckets_read_alike_and_survive_a_restart(
        tmp_path: Path, clock: WallClock) -> None:
    h = make(tmp_path, clock)
    for minute in range(0, 30):
        add(h, float(minute), START + minute * 60_000)
    clock.now = START + 30 * 60_000
    before = h.query("pm", "pm2_5", 24)
    h.flush()  # writes the five completed buckets; the sixth is still open
    assert h.query("pm", "pm2_5", 24) == before
    assert before is not None and [p.n for p in before.points] == [5] * 6
    add(h, 100.0, START + 29 * 60_000 + 30_000)  # more for the open bucket, then a restart
    h.close()
    again = make(tmp_path, clock)
    add(again, 200.0, START + 29 * 60_000 + 40_000)  # the restarted agent adds to it
    again.flush(everything=True)
    series = again.query("pm", "pm2_5", 24)
    assert series is not None
    assert [p.n for p in series.points] == [5] * 5 + [7]
    assert series.points[-1].value == pytest.approx((25 + 26 + 27 + 28 + 29 + 100 + 200) / 7)


def test_only_the_asked_hours_are_returned(tmp_path: Path, clock: WallClock) -> None:
    h = make(tmp_path, clock)
    for hour in range(48):
        add(h, float(hour), START + hour * 3_600_000)
    h.flush(everything=True)
    clock.now = START + 48 * 3_600_000
    series = h.query("pm", "pm2_5", 24)
    assert series is not None and len(series.points) == 24
    assert series.points[0].value == 24.0 and series.points[-1].value == 47.0
    assert h.query("pm", "pm10", 24) is None
    assert h.query("other", "pm2_5", 24) is None


def test_pruned_to_its_days_and_bounded_in_size(tmp_path: Path, clock: WallClock) -> None:
    """Ten days of one value every minute leave seven days of buckets, about 90 kB."""
    h = make(tmp_path, clock)
    for minute in range(10 * 24 * 60):
        clock.now = START + minute * 60_000
        add(h, 10.37 + minute % 7 * 1.13, clock.now, low=9.71, high=12.93 + minute % 3)
        if minute % 60 == 0:
            h.flush()
    clock.now += history_module.PRUNE_EVERY_MS  # the next hourly prune is due
    h.flush()
    with sqlite3.connect(tmp_path / "history.sqlite") as conn:
        buckets = [row[0] for row in conn.execute("SELECT bucket FROM points ORDER BY bucket")]
    assert buckets[0] * BUCKET_MS > clock.now - 7 * DAY_MS - BUCKET_MS
    assert len(buckets) <= 7 * 24 * 12 + 1
    h.close()
    with sqlite3.connect(tmp_path / "history.sqlite") as conn:
        conn.execute("VACUUM")
    size = (tmp_path / "history.sqlite").stat().st_size
    assert size < 150_000, f"{size} bytes for one series' week"


def test_series_are_capped(tmp_path: Path, clock: WallClock,
                           monkeypatch: pytest.MonkeyPatch,
                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(history_module, "MAX_SERIES", 3)
    h = make(tmp_path, clock)
    for i in range(5):
        add(h, 1.0, START, quantity=f"q{i}")
    assert h.query("pm", "q2", 1) is not None
    assert h.query("pm", "q3", 1) is None
    assert sum("at most 3 series" in r.message for r in caplog.records) == 1


def test_a_new_unit_replaces_the_old_points(tmp_path: Path, clock: WallClock) -> None:
    h = make(tmp_path, clock)
    add(h, 5.0, START - BUCKET_MS)
    h.flush(everything=True)
    h.add("pm", "pm2_5", "mg/m3", "mean", value=0.005, low=0.005, high=0.005, utc_ms=START)
    clock.now = START + 1000
    series = h.query("pm", "pm2_5", 24)
    assert series is not None and series.unit == "mg/m3"
    assert [p.value for p in series.points] == [0.005]
    h.flush(everything=True)
    assert [p.value for p in h.query("pm", "pm2_5", 24).points] == [0.005]  # type: ignore[union-attr]


def test_non_finite_and_unknown_rules_are_ignored(tmp_path: Path, clock: WallClock) -> None:
    h = make(tmp_path, clock)
    add(h, math.nan, START)
    add(h, 1.0, START, rule="median")
    assert h.query("pm", "pm2_5", 1) is None


def test_a_damaged_file_is_replaced(tmp_path: Path, clock: WallClock,
                                    caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "history.sqlite").write_bytes(b"not a database at all" * 100)
    h = make(tmp_path, clock)
    add(h, 3.0, START)
    h.flush(everything=True)
    assert h.query("pm", "pm2_5", 1) is not None
    assert any("starting a new one" in r.message for r in caplog.records)
    with sqlite3.connect(tmp_path / "history.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM points").fetchone()[0] == 1


def test_the_page_cache_has_a_fixed_size(tmp_path: Path, clock: WallClock) -> None:
    h = make(tmp_path, clock)
    assert h._conn is not None
    assert h._conn.execute("PRAGMA cache_size").fetchone()[0] == -PAGE_CACHE_KIB
