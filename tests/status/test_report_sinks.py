"""Every sink on the status page; a refused or stuck one besides MQTT is a problem."""

from __future__ import annotations

import json

from agent.health.heartbeat import SinkStatus
from agent.status.report import Trend, build, problems
from tests.status.boxes import healthy

CALM = Trend(None, 0)
MQTT = SinkStatus("mqtt", 0, 1.0, 3, 0, last_error="connection refused")


def test_every_sink_is_in_the_report_and_a_working_one_is_no_problem() -> None:
    influx = SinkStatus("influxdb", 12, 2.0, 1, 0, 4)
    facts = healthy(sinks=(MQTT, influx))
    assert problems(facts, CALM, 600) == []
    document = json.loads(json.dumps(build(facts, CALM, [], {}, None)))
    assert [s["name"] for s in document["sinks"]] == ["mqtt", "influxdb"]
    assert document["sinks"][1] == {
        "name": "influxdb", "backlog": 12, "last_success_age_s": 2.0, "errors_total": 1,
        "dropped_total": 0, "rejected_total": 4, "refused": False, "last_error": ""}


def test_a_refused_sink_is_an_error_and_a_stuck_one_too_but_mqtt_is_the_brokers() -> None:
    refused = SinkStatus("influxdb", 5, None, 3, 0, 0, "HTTP 401: authorization failed", True)
    stuck = SinkStatus("sensor_community", 40, 1800.0, 9, 0, 0, "HTTP 503: ")
    stuck_mqtt = SinkStatus("mqtt", 99, None, 9, 0, last_error="timed out")
    found = problems(healthy(sinks=(stuck_mqtt, refused, stuck)), CALM, 600)
    assert [(p.severity, p.subject, p.text) for p in found] == [
        ("error", "influxdb", "refuses this box: HTTP 401: authorization failed"),
        ("error", "sensor_community", "40 measurements waiting (HTTP 503: )")]
