"""The SensorThings sink: posts the outbox's windows as Observations.

The shared loop (``http_sink.py``) reads the outbox at this sink's own position and
acts on each answer; which rows become which Observations is in ``sensorthings.py``.
Particular to SensorThings:

* before its first Observation (and again after the server said 404, a Datastream
  gone or a wrong URL) the sink provisions the box (``sensorthings_client.py``):
  idempotent, so a restart or a new sensor just adds what is missing. Provisioning
  fails like a POST would (no answer, 5xx: retried; 401/403/404: refused, kept);
* one Observation per POST to ``/Observations``, linked to its Datastream by
  ``@iot.id``. The dataArray extension (``CreateObservations``) would carry a batch
  in one request, but its 201 answer reports a failed item only inside the body, and
  sending a partly stored batch again would store its other items twice;
* a 400 is this Observation (the server does not take its value or time): it is
  skipped for this sink, counted, logged once per reason.
"""

from __future__ import annotations

import http.client
import random
import urllib.request
from collections.abc import Sequence

from agent.clock import SYSTEM, Clock
from agent.config.sensorthings import SensorThingsConfig
from agent.errors import PublishError
from agent.models import OutboxRecord
from agent.publish import sensorthings as sta
from agent.publish.delivery import Answer, Verdict, Work
from agent.publish.http_sink import HttpSink
from agent.publish.sensorthings_client import Server, provision
from agent.storage import Outbox

SINK = "sensorthings"


class SensorThingsSink(HttpSink[sta.ObservationPost]):
    """Posts committed windows in outbox order, provisioning the box first."""

    RECEIVER = "The SensorThings server"

    def __init__(self, outbox: Outbox, config: SensorThingsConfig, catalog: sta.Catalog,
                 user_agent: str, *,
                 rng: random.Random | None = None, clock: Clock = SYSTEM) -> None:
        super().__init__(SINK, outbox, config, config.batch_rows, rng=rng, clock=clock)
        self._catalog = catalog
        self._ids: dict[str, sta.EntityId] | None = None
        self._server = Server.for_config(config, user_agent)

    def plan(self, records: Sequence[OutboxRecord], *, full: bool
             ) -> Work[sta.ObservationPost]:
        return sta.plan(records, self._catalog)

    def http_request(self, request: sta.ObservationPost) -> urllib.request.Request:
        body = {"Datastream": {"@iot.id": self._datastream_id(request.datastream)}} | \
            request.body
        return urllib.request.Request(
            f"{self._server.base}/Observations", data=sta.json_bytes(body), method="POST",
            headers=self._server.headers())

    def verdict(self, answer: Answer) -> Verdict:
        meaning = sta.sta_verdict(answer)
        if answer.status == 404:
            self._ids = None  # a Datastream deleted on the server: provision again
        return meaning

    def subject(self) -> str:
        return f"Observations of {self._catalog.device_id!r} at {self._server.base}"

    def refusal(self, answer: Answer) -> str:
        return (f"{self.RECEIVER} refuses the {self.subject()} (HTTP {answer.status}: "
                f"{answer.reason}): check sinks.sensorthings url, username and "
                "password_file")

    def _datastream_id(self, key: str) -> sta.EntityId:
        """The Datastream's id, provisioning first when not known (raised errors are
        the loop's: HTTP statuses become verdicts, the rest a retry)."""
        if self._ids is None:
            try:
                self._ids = provision(self._server, self._catalog).ids
            except PublishError as exc:
                raise http.client.HTTPException(f"provisioning failed: {exc}") from exc
        return self._ids[key]
