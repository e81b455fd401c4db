"""Health values go out on change, at most every few minutes, and each at least hourly."""

from __future__ import annotations

import pytest

from agent.health.throttle import HealthThrottle
from agent.models import Measurement


def reading(quantity: str, value: float, sensor: str = "agent") -> Measurement:
    return Measurement(sensor, quantity, value, "1", 0, 0.0)


def sent(throttle: HealthThrottle, now_s: float, **values: float) -> set[str]:
    return {m.quantity for m in throttle.select(
        [reading(q, v) for q, v in values.items()], now_s)}


def test_the_first_reading_goes_out_whole_then_only_changes_spaced_by_the_minimum() -> None:
    throttle = HealthThrottle(min_send_interval_s=300, refresh_s=3600)
    assert sent(throttle, 0, uptime=0, errors_total=0) == {"uptime", "errors_total"}
    for minute in range(1, 5):  # read every minute; uptime changes, the counter does not
        assert sent(throttle, 60 * minute, uptime=60 * minute, errors_total=0) == set()
    assert sent(throttle, 300, uptime=300, errors_total=0) == {"uptime"}
    assert sent(throttle, 360, uptime=360, errors_total=1) == {"errors_total"}
    assert sent(throttle, 420, uptime=420, errors_total=2) == set(), "too soon after the last"
    assert sent(throttle, 660, uptime=660, errors_total=2) == {"uptime", "errors_total"}


def test_an_unchanged_value_is_sent_again_after_the_refresh_time() -> None:
    throttle = HealthThrottle(min_send_interval_s=300, refresh_s=3600)
    assert sent(throttle, 0, dropped_total=0) == {"dropped_total"}
    assert sent(throttle, 3599, dropped_total=0) == set()
    assert sent(throttle, 3600, dropped_total=0) == {"dropped_total"}


def test_the_same_quantity_of_two_sensors_is_two_values() -> None:
    throttle = HealthThrottle(min_send_interval_s=300, refresh_s=3600)
    first = throttle.select([reading("reads_total", 5, "pm"), reading("reads_total", 5, "co2")],
                            0)
    assert len(first) == 2
    assert throttle.select([reading("reads_total", 5, "pm"), reading("reads_total", 9, "co2")],
                           400) == [reading("reads_total", 9, "co2")]


def test_zero_minimum_sends_every_change_and_the_settings_must_agree() -> None:
    throttle = HealthThrottle(min_send_interval_s=0, refresh_s=0)
    assert sent(throttle, 0, a=1) == {"a"} and sent(throttle, 0.5, a=1) == {"a"}
    with pytest.raises(ValueError):
        HealthThrottle(min_send_interval_s=600, refresh_s=300)
