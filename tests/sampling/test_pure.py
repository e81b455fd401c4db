"""Schedule, quality control and aggregation windows: the pure parts of the sampler."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config.profiles import Aggregation, OutOfRange, QuantityProfile
from agent.config.sensors import Calibration
from agent.models import Quality, Reading
from agent.sampling.quality import Checked, check_reading
from agent.sampling.schedule import Schedule
from agent.sampling.window import Identity, Window

PM = QuantityProfile(name="pm2_5", unit="ug/m3", min=0, max=999.9, resolution=0.1)


def test_next_slot_is_regular_when_on_time() -> None:
    schedule = Schedule(100.0, 2.0)
    assert schedule.next_slot(100.0, 100.5) == (102.0, 0)


def test_overrun_skips_slots_instead_of_bunching() -> None:
    schedule = Schedule(100.0, 2.0)
    nxt, missed = schedule.next_slot(100.0, 107.1)
    assert (nxt, missed) == (108.0, 3)


@given(st.floats(0.1, 100), st.floats(0, 1000), st.floats(0, 1000))
def test_slots_stay_on_the_grid_and_ahead(interval: float, elapsed: float, lag: float) -> None:
    schedule = Schedule(0.0, interval)
    previous = schedule.slot_at_or_after(elapsed)
    now = previous + lag
    nxt, missed = schedule.next_slot(previous, now)
    assert nxt > now
    k = nxt / interval
    assert abs(k - round(k)) < 1e-6
    assert missed == round((nxt - previous) / interval) - 1


def test_out_of_range_is_dropped_or_flagged_per_profile() -> None:
    assert check_reading(Reading("pm2_5", 1200.0), PM, warming_up=False, calibration=None) is None
    flagged = PM.model_copy(update={"out_of_range": OutOfRange.FLAG})
    checked = check_reading(Reading("pm2_5", -1.0), flagged, warming_up=False, calibration=None)
    assert checked == Checked("pm2_5", -1.0, frozenset({Quality.OUT_OF_RANGE}))


def test_calibration_applies_after_range_check_and_is_flagged() -> None:
    checked = check_reading(Reading("pm2_5", 10.0), PM, warming_up=True,
                            calibration=Calibration(scale=0.8, offset=1.0))
    assert checked == Checked("pm2_5", 9.0, frozenset({Quality.CALIBRATED, Quality.WARMING_UP}))


def window(aggregate: bool = True) -> Window:
    return Window(Identity("pm", {"pm2_5": "ug/m3", "pm10": "ug/m3"}, {}), 60.0, aggregate)


def test_window_emits_mean_min_max_n_per_quantity() -> None:
    w = window()
    for v in (10.0, 12.0, 14.0):
        w.add(Checked("pm2_5", v, frozenset()))
    w.add(Checked("pm10", 20.0, frozenset({Quality.RETRIED})))
    out = {m.quantity: m for m in w.close(1000, 5.0)}
    assert out["pm2_5"].value == pytest.approx(12.0)
    assert (out["pm2_5"].stats.minimum, out["pm2_5"].stats.maximum,
            out["pm2_5"].stats.count) == (10.0, 14.0, 3)
    assert out["pm10"].flags == {Quality.RETRIED}
    assert out["pm2_5"].unit == "ug/m3" and out["pm2_5"].utc_ms == 1000
    assert w.close(2000, 6.0) == [], "a closed window starts empty"


def test_a_window_says_how_long_it_really_spans() -> None:
    """A full window spans the configured 60 s even when closed a little late; the partial
    window a stopping worker closes spans only the seconds since its scheduled start, so
    a receiver placing it at end - window_s does not overlap it with the window before."""
    w = window()
    w.open(100.0)
    w.add(Checked("pm2_5", 10.0, frozenset()))
    (full,) = w.close(1000, 160.02)
    w.open(160.0)
    w.add(Checked("pm2_5", 11.0, frozenset()))
    (partial,) = w.close(2000, 172.5)
    assert (full.stats.window_s, partial.stats.window_s) == (60.0, pytest.approx(12.5))
    assert (full.span_s, partial.span_s) == (60.0, pytest.approx(12.5))


def test_warm_up_samples_are_withheld_when_settled_ones_exist() -> None:
    w = window()
    w.add(Checked("pm2_5", 100.0, frozenset({Quality.WARMING_UP})))
    w.add(Checked("pm2_5", 10.0, frozenset()))
    (m,) = w.close(0, 0.0)
    assert (m.value, m.stats.count, m.flags) == (10.0, 1, frozenset())


def test_window_of_only_warm_up_samples_is_published_flagged() -> None:
    w = window()
    w.add(Checked("pm2_5", 100.0, frozenset({Quality.WARMING_UP})))
    (m,) = w.close(0, 0.0)
    assert m.flags == {Quality.WARMING_UP}


def test_single_samples_carry_no_stats_when_not_aggregating() -> None:
    w = window(aggregate=False)
    w.add(Checked("pm2_5", 5.0, frozenset()))
    (m,) = w.close(0, 0.0)
    assert m.stats is None and m.value == 5.0


def test_decibel_windows_use_energy_mean_max_and_min() -> None:
    rules = {"laeq": Aggregation.ENERGY_MEAN, "lamax": Aggregation.MAX,
             "lamin": Aggregation.MIN}
    w = Window(Identity("noise", dict.fromkeys(rules, "dB"), {}, rules), 60.0, True)
    for laeq, lamax, lamin in ((94.0, 99.0, 90.0), (84.0, 88.0, 70.0)):
        w.add(Checked("laeq", laeq, frozenset()))
        w.add(Checked("lamax", lamax, frozenset()))
        w.add(Checked("lamin", lamin, frozenset()))
    out = {m.quantity: m.value for m in w.close(0, 0.0)}
    assert out["laeq"] == pytest.approx(91.4036, abs=1e-4)  # reference vector, §11
    assert (out["lamax"], out["lamin"]) == (99.0, 70.0)
