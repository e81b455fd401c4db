"""The Sensor.Community sink: pushes the outbox's windows over HTTP.

The shared loop (``http_sink.py``) reads the outbox at this sink's own position and
acts on each answer; what a push is and what each answer means is in
``sensor_community.py``. Here is what is particular to Sensor.Community:

* 400 (unknown value type, pin not registered for the node): the push's rows are
  skipped for this sink and counted; the log says which pin to register.
* 403 (node unknown or no X-Sensor), 404, 401, 405: logged once with where to
  register the node; the rows are kept and retried every ``refused_retry_s``.
* 5xx, 408, 429, no answer: retried with backoff; the rows are kept.
"""

from __future__ import annotations

import random
import urllib.request
from collections.abc import Sequence

from agent.clock import SYSTEM, Clock
from agent.config.sinks import Channels, SensorCommunityConfig
from agent.models import OutboxRecord
from agent.publish import sensor_community as sc
from agent.publish.delivery import Answer, Verdict, Work
from agent.publish.http_sink import HttpSink, SinkStats
from agent.storage import Outbox

__all__ = ["SINK", "SensorCommunitySink", "SinkStats"]

SINK = "sensor_community"
BATCH_ROWS = 500


class SensorCommunitySink(HttpSink[sc.Push]):
    """Pushes committed windows in outbox order, one POST per window and sensor."""

    RECEIVER = "Sensor.Community"

    def __init__(self, outbox: Outbox, config: SensorCommunityConfig, node_id: str,
                 channels: Channels, software_version: str, *,
                 rng: random.Random | None = None, clock: Clock = SYSTEM) -> None:
        super().__init__(SINK, outbox, config, BATCH_ROWS, rng=rng, clock=clock)
        self._config = config
        self._node_id = node_id
        self._channels = channels
        self._software_version = software_version

    def plan(self, records: Sequence[OutboxRecord], *, full: bool) -> Work[sc.Push]:
        return sc.plan(records, self._channels, full=full)

    def http_request(self, request: sc.Push) -> urllib.request.Request:
        return urllib.request.Request(
            str(self._config.url), data=sc.body(request, self._software_version),
            method="POST", headers=sc.headers(self._node_id, request, self._software_version))

    def verdict(self, answer: Answer) -> Verdict:
        return sc.verdict(answer.status or 0)

    def subject(self) -> str:
        return f"node {self._node_id}"

    def reject(self, request: sc.Push, answer: Answer) -> None:
        self._outbox.ack(request.row_ids, SINK)
        self.log_once(f"{answer.status} {request.pin} {answer.reason}", "Sensor.Community "
                      "rejected the push for %s (HTTP %s: %s); its %d measurements are skipped "
                      "for Sensor.Community. Is this sensor registered with pin %d?",
                      request.label, answer.status, answer.reason, len(request.row_ids),
                      request.pin)

    def refusal(self, answer: Answer) -> str:
        return (f"Sensor.Community refuses node {self._node_id} (HTTP {answer.status}: "
                f"{answer.reason}): register it on https://devices.sensor.community (or set "
                "sinks.sensor_community.node_id)")
