"""Interval records: totals, means and maxima, empty intervals, suppression, alerts."""

import dataclasses

import pytest

from agent.vision.counting import (
    CountingLine,
    Crossing,
    DensityAlert,
    Direction,
    FrameCounts,
    Zone,
    ZoneOccupancy,
)
from agent.vision.intervals import IntervalCounter, LineTotals, ZoneStats

LINES = (
    CountingLine("door", (0.0, 100.0), (200.0, 100.0), band_px=16.0),
    CountingLine("gate", (0.0, 300.0), (200.0, 300.0), band_px=16.0),
)
SQUARE = ((0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0))
ZONES = (Zone("plein", SQUARE, area_m2=4.0), Zone("hoek", SQUARE))


def counts(t, *, ins=0, outs=0, plein=0, hoek=0, everyone=0, alerts=()):
    crossings = [Crossing("door", 1, Direction.IN, t)] * ins
    crossings += [Crossing("door", 2, Direction.OUT, t)] * outs
    return FrameCounts(
        t_s=t,
        crossings=tuple(crossings),
        zones=(ZoneOccupancy("plein", plein, plein / 4.0), ZoneOccupancy("hoek", hoek, None)),
        occupancy=everyone,
        alerts=tuple(alerts),
    )


def test_a_record_per_interval_with_totals_means_and_maxima():
    ic = IntervalCounter(LINES, ZONES, interval_s=10.0)
    alert = DensityAlert("plein", 12.0, True, 1.0)
    records = []
    records += ic.add(counts(0.0, ins=1, plein=2, hoek=1, everyone=3))
    records += ic.add(counts(5.0, ins=2, outs=1, plein=4, everyone=5))
    records += ic.add(counts(9.999, plein=0, everyone=1))
    assert records == []
    records += ic.add(counts(10.0, outs=3, plein=4, everyone=4, alerts=[alert]))  # next interval
    records += ic.add(counts(20.0))
    first, second = records
    assert (first.start_s, first.end_s, first.frames) == (0.0, 10.0, 3)
    assert first.lines == (LineTotals("door", 3, 1), LineTotals("gate", 0, 0))
    assert first.zones == (
        ZoneStats("plein", pytest.approx(2.0), 4, pytest.approx(0.5), pytest.approx(1.0)),
        ZoneStats("hoek", pytest.approx(1 / 3), 1, None, None),
    )
    assert (first.occupancy_mean, first.occupancy_max) == (pytest.approx(3.0), 5)
    assert first.alerts == ()
    assert (second.start_s, second.end_s, second.frames) == (10.0, 20.0, 1)
    assert second.lines[0] == LineTotals("door", 0, 3)
    assert second.alerts == (alert,)
    assert second.suppress_below == 0


def test_a_stall_produces_empty_records_not_zeros():
    ic = IntervalCounter(LINES, ZONES, interval_s=10.0, start_s=100.0)
    ic.add(counts(101.0, ins=1, everyone=2))
    records = ic.add(counts(135.0, everyone=1))
    assert [(r.start_s, r.frames) for r in records] == [(100.0, 1), (110.0, 0), (120.0, 0)]
    empty = records[1]
    assert empty.lines == (LineTotals("door", None, None), LineTotals("gate", None, None))
    assert empty.zones[0] == ZoneStats("plein", None, None, None, None)
    assert (empty.occupancy_mean, empty.occupancy_max) == (None, None)
    with pytest.raises(ValueError):
        ic.add(counts(129.0))  # before the current interval (130–140)


def test_small_counts_are_suppressed_including_zero():
    ic = IntervalCounter(LINES, ZONES, interval_s=10.0, suppress_below=3)
    ic.add(counts(0.0, ins=2, outs=5, plein=1, hoek=4, everyone=1))
    ic.add(counts(1.0, outs=1, plein=2, hoek=4, everyone=6))
    (record,) = ic.add(counts(10.0))
    assert record.suppress_below == 3
    assert record.lines == (LineTotals("door", None, 6), LineTotals("gate", None, None))
    # plein: mean 1.5 and max 2 are both below 3; densities follow.
    assert record.zones[0] == ZoneStats("plein", None, None, None, None)
    assert record.zones[1] == ZoneStats("hoek", pytest.approx(4.0), 4, None, None)
    # Whole frame: mean 3.5 and max 6 are not small, but plein's figures are withheld, and
    # whole frame minus hoek would give them back: withheld too (complementary suppression).
    assert (record.occupancy_mean, record.occupancy_max) == (None, None)


def test_the_whole_frame_is_shown_when_no_zone_figure_is_withheld():
    ic = IntervalCounter(LINES, ZONES, interval_s=10.0, suppress_below=3)
    ic.add(counts(0.0, plein=3, hoek=4, everyone=9))
    ic.add(counts(1.0, plein=3, hoek=1, everyone=6))
    (record,) = ic.add(counts(10.0))
    assert record.zones[1].occupancy_max == 4 and record.zones[1].occupancy_mean is None
    assert (record.occupancy_mean, record.occupancy_max) == (None, 9), \
        "a withheld zone mean withholds the whole-frame mean, not the maximum"


def test_density_is_kept_when_its_occupancy_figure_is():
    ic = IntervalCounter(LINES, ZONES, interval_s=10.0, suppress_below=2)
    ic.add(counts(0.0, plein=1))
    ic.add(counts(1.0, plein=5))
    record = ic.flush(4.0)
    assert record is not None
    assert record.zones[0] == ZoneStats("plein", pytest.approx(3.0), 5, 0.75, 1.25)
    assert (record.start_s, record.end_s, record.frames) == (0.0, 4.0, 2)


def test_flush_returns_nothing_without_frames_and_restarts_the_grid():
    ic = IntervalCounter(LINES, ZONES, interval_s=10.0)
    assert ic.flush(5.0) is None
    ic.add(counts(0.0, everyone=1))
    assert ic.flush(4.0).end_s == 4.0
    assert ic.flush(6.0) is None, "no frame since 4.0: nothing to report, but the grid moves"
    assert ic.add(counts(14.5)) == []
    (record,) = ic.add(counts(16.5))
    assert (record.start_s, record.end_s, record.frames) == (6.0, 16.0, 1)


def test_records_are_frozen_and_bad_settings_refused():
    ic = IntervalCounter(LINES, ZONES, interval_s=1.0)
    ic.add(counts(0.0))
    (record,) = ic.add(counts(1.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.frames = 5  # type: ignore[misc]
    with pytest.raises(ValueError):
        IntervalCounter(LINES, ZONES, interval_s=0.0)
    with pytest.raises(ValueError):
        IntervalCounter(LINES, ZONES, suppress_below=-1)
