"""The status service: latest values, history, trackers, the periodic summary and the page.

``agent/app.py`` creates one, hands it every published data measurement
(:meth:`observe`), calls :meth:`tick` from its main loop and :meth:`stop` at the end.
With ``[status] enabled = false`` there is no history file and no socket; the log
summary runs either way.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

from agent.config.health import HealthConfig
from agent.config.status import StatusConfig
from agent.models import Measurement
from agent.status.facts import BoxFacts, Tracker
from agent.status.history import History
from agent.status.report import Trend, build, problems
from agent.status.summary import summary_line
from agent.status.units import camera_history_rule, display_unit, label
from agent.web.server import SetupSite, StatusServer

log = logging.getLogger("agent.status")

TRACK_EVERY_S = 10.0
FLUSH_EVERY_S = 60.0
HISTORY_FILE = "history.sqlite"


class StatusService:
    """Everything the page knows, kept up to date by the main loop."""

    def __init__(self, config: StatusConfig, health: HealthConfig, state_dir: Path,
                 facts: Callable[[], BoxFacts], rules: dict[tuple[str, str], str],
                 *, cameras: Iterable[str], wall_ms: Callable[[], int],
                 monotonic: Callable[[], float], setup: SetupSite | None = None) -> None:
        self._config = config
        self._setup = setup
        self._monotonic = monotonic
        monotonic_s = monotonic()
        self._facts = facts
        self._rules = rules
        self._cameras = frozenset(cameras)
        self._summary_every = health.summary_interval_s
        self._lock = threading.Lock()
        self._latest: dict[str, dict[str, Measurement]] = {}
        self._tracker = Tracker(monotonic_s)
        self._next_track = monotonic_s
        self._next_flush = monotonic_s + FLUSH_EVERY_S
        self._next_summary = monotonic_s + self._summary_every
        self._sent_at_summary = 0
        self.history = History(state_dir / HISTORY_FILE, config.history_days, wall_ms) \
            if config.enabled else None
        self._server = self._make_server() if config.enabled else None

    def _make_server(self) -> StatusServer | None:
        try:
            token = self._config.token()
        except OSError as exc:  # checked by the config; gone since: no page, the agent runs
            log.error("status page not started: cannot read %s: %s", self._config.token_file,
                      exc.strerror or exc)
            return None
        return StatusServer(self, self._config.bind, self._config.port, token,
                            self._config.allowed_hosts, setup=self._setup)

    # -- main loop -------------------------------------------------------------------------

    def start(self) -> None:
        if self._server is not None:
            self._server.start()

    def observe(self, measurements: list[Measurement]) -> None:
        """Published data values: the latest per quantity, and the history's buckets."""
        if self.history is None or not measurements:
            return
        try:
            self._observe(measurements)
        except Exception:  # a bug here may cost the page, never the measurements
            log.exception("status page: observing measurements failed")

    def _observe(self, measurements: list[Measurement]) -> None:
        history = self.history
        assert history is not None  # observe() returns early without one
        with self._lock:
            for m in measurements:
                self._latest.setdefault(m.sensor_id, {})[m.quantity] = m
        for m in measurements:
            rule = camera_history_rule(m.quantity) if m.sensor_id in self._cameras \
                else self._rules.get((m.sensor_id, m.quantity.removesuffix("_rh_corrected")))
            if rule is not None:
                low, high = (m.stats.minimum, m.stats.maximum) if m.stats else (m.value, m.value)
                history.add(m.sensor_id, m.quantity, m.unit, rule, value=m.value,
                                 low=low, high=high, utc_ms=m.utc_ms)

    def tick(self, monotonic_s: float) -> None:
        """Called every loop turn; does something only every few seconds."""
        try:
            self._tick(monotonic_s)
        except Exception:  # as in observe: the main loop must go on
            log.exception("status page: periodic update failed")

    def _tick(self, monotonic_s: float) -> None:
        if monotonic_s >= self._next_track:
            self._next_track = monotonic_s + TRACK_EVERY_S
            facts = self._facts()
            self._tracker.note(facts.broker.connected, facts.outbox_dropped_total, monotonic_s)
            if self._summary_every and monotonic_s >= self._next_summary:
                self._next_summary = monotonic_s + self._summary_every
                log.info("summary: %s", summary_line(facts, self._sent_at_summary,
                                                     self._summary_every))
                self._sent_at_summary = facts.broker.measurements_acked
        if self.history is not None and monotonic_s >= self._next_flush:
            self._next_flush = monotonic_s + FLUSH_EVERY_S
            self.history.flush()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        if self.history is not None:
            self.history.close()

    # -- the page's threads ---------------------------------------------------------------

    def report(self, monotonic_s: float) -> dict[str, object]:
        facts = self._facts()
        trend = Trend(self._tracker.broker_down_s(monotonic_s),
                      self._tracker.dropped_last_hour(facts.outbox_dropped_total))
        with self._lock:
            latest = {sensor: list(values.values())  # in the order the sensor reports them
                      for sensor, values in self._latest.items()}
        return build(facts, trend, problems(facts, trend, self._config.broker_down_after_s),
                     latest, None if self.history is None else self.history.size_bytes())

    def status_json(self) -> bytes:
        return _json(self.report(self._monotonic()))

    def history_json(self, sensor: str, quantity: str, hours: float) -> bytes | None:
        if self.history is None:
            return None
        series = self.history.query(sensor, quantity, hours)
        if series is None:
            return None
        document = {"sensor": series.sensor, "quantity": series.quantity,
                    "label": label(series.quantity), "unit": series.unit,
                    "display_unit": display_unit(series.unit, series.quantity),
                    "rule": series.rule, "hours": hours,
                    "points": [asdict(p) for p in series.points]}
        return _json(document)


def _finite(value: object) -> object:
    """NaN and infinity as null: JSON has no such numbers, and a browser refuses them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _json(document: object) -> bytes:
    return json.dumps(_finite(document), allow_nan=False, separators=(",", ":")).encode()
