"""Which health values go out: on change, at most every few minutes, and each now and then.

The box reads its own health every ``[health] interval_s`` (60 s): uptime, outbox depth,
counters per sensor and sink, CPU temperature. Sent every time, that was 63 % of the
stream, mostly repeating itself (a failure counter that stays 0 all year). So a value
goes out when it differs from the last one sent, but not sooner than
``min_send_interval_s`` after it (a value that changes every minute, like uptime or
the outbox depth, goes out every five); and every value at least every ``refresh_s``,
changed or not, so a dashboard that starts late, or a receiver checking that the box
still reports a quantity, sees it within that time. The first reading after a start
(or a reload) goes out whole.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.models import Measurement


class HealthThrottle:
    """Remembers what was sent of each (sensor, quantity), and when."""

    def __init__(self, min_send_interval_s: float, refresh_s: float) -> None:
        if not 0 <= min_send_interval_s <= refresh_s:
            raise ValueError("need 0 <= min_send_interval_s <= refresh_s")
        self.min_send_interval_s = min_send_interval_s
        self.refresh_s = refresh_s
        self._sent: dict[tuple[str, str], tuple[float, float]] = {}
        """(sensor, quantity) → (value, monotonic time) last sent."""

    def select(self, readings: Iterable[Measurement], now_s: float) -> list[Measurement]:
        """The readings to send now (``now_s`` on the monotonic clock)."""
        out = []
        for m in readings:
            key = (m.sensor_id, m.quantity)
            last = self._sent.get(key)
            if last is not None:
                value, at = last
                due = now_s - at >= self.refresh_s or (
                    m.value != value and now_s - at >= self.min_send_interval_s)
                if not due:
                    continue
            self._sent[key] = (m.value, now_s)
            out.append(m)
        return out
