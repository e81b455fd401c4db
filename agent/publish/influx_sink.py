"""The InfluxDB sink: writes the outbox's windows as line protocol.

The shared loop (``http_sink.py``) reads the outbox at this sink's own position and
acts on each answer; how rows become points and what InfluxDB's answers mean is in
``influxdb.py``. Particular to InfluxDB:

* a batch InfluxDB partly refuses (400 partial write, field type conflict, a line it
  cannot parse, 413 too large) is sent again in halves; InfluxDB stores the same
  point again as the same point, so the halves repeat nothing harmful, and a line it
  never takes ends alone, set aside in the outbox's poison table for this sink
  (kept, counted, logged once per reason) while the lines around it are stored;
* 401/403/404 and any other 400: wrong credentials, no such database or bucket, a
  setting the server does not take: logged once, rows kept, retried every
  ``refused_retry_s``;
* 5xx, 408, 429 (Retry-After honoured) and no answer: retried with backoff.
"""

from __future__ import annotations

import random
import urllib.request
from collections.abc import Sequence

from agent.clock import SYSTEM, Clock
from agent.config.influxdb import InfluxDBConfig
from agent.models import OutboxRecord
from agent.publish import influxdb as influx
from agent.publish.delivery import Answer, Verdict, Work
from agent.publish.http_sink import HttpSink
from agent.storage import Outbox

SINK = "influxdb"


class InfluxDBSink(HttpSink[influx.Batch]):
    """Writes committed windows in outbox order, up to ``batch_lines`` points a write."""

    RECEIVER = "InfluxDB"

    def __init__(self, outbox: Outbox, layout: influx.Layout, user_agent: str, *,
                 rng: random.Random | None = None, clock: Clock = SYSTEM) -> None:
        config = layout.config
        # A point holds a window's quantities: claiming as many rows as points keeps a
        # write under batch_lines points whatever the sensors.
        super().__init__(SINK, outbox, config, config.batch_lines, rng=rng, clock=clock)
        self._config: InfluxDBConfig = config
        self._layout = layout
        self._url = influx.write_url(config)
        self._user_agent = user_agent

    def plan(self, records: Sequence[OutboxRecord], *, full: bool) -> Work[influx.Batch]:
        return influx.plan(records, self._layout)

    def http_request(self, request: influx.Batch) -> urllib.request.Request:
        return urllib.request.Request(
            self._url, data=request.body(), method="POST",
            headers=influx.headers(self._config, self._config.secret(), self._user_agent))

    def verdict(self, answer: Answer) -> Verdict:
        return influx.influx_verdict(answer)

    def split(self, request: influx.Batch) -> list[influx.Batch]:
        return request.halves()

    def subject(self) -> str:
        target = self._config.database if self._config.api == "v1" else self._config.bucket
        return f"writes to {target!r}"

    def reject(self, request: influx.Batch, answer: Answer) -> None:
        """Kept in the poison table, not dropped: the line may be worth a look."""
        self._outbox.set_aside(request.row_ids, f"HTTP {answer.status}: {answer.reason}", SINK)

    def refusal(self, answer: Answer) -> str:
        what = "database, username and password_file" if self._config.api == "v1" \
            else "org, bucket and token_file"
        return (f"InfluxDB refuses the {self.subject()} (HTTP {answer.status}: "
                f"{answer.reason}): check sinks.influxdb {what}")
