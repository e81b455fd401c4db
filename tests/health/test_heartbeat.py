"""Per-sink health travels in the heartbeat as the box's own quantities."""

from __future__ import annotations

from agent.health.heartbeat import AgentStatus, SinkStatus, heartbeat
from agent.health.system import SystemFacts


def test_each_sink_reports_backlog_last_success_errors_and_losses() -> None:
    agent = AgentStatus(uptime_s=5.0, outbox_depth=7, outbox_dropped_total=0,
                        mqtt_connected=True, mqtt_connects=1, messages_sent=3)
    system = SystemFacts(None, None, 0.1, None, None, None)
    sinks = [SinkStatus("mqtt", 0, 1.5, 2, 0),
             SinkStatus("sensor_community", 7, None, 4, 3, rejected_total=9)]
    values = {(m.sensor_id, m.quantity): (m.value, m.unit)
              for m in heartbeat(agent, system, [], 1_800_000_000_000, 5.0, sinks=sinks)}
    assert values[("agent", "mqtt_backlog")] == (0.0, "{measurement}")
    assert values[("agent", "mqtt_last_success_age")] == (1.5, "s")
    assert values[("agent", "mqtt_errors_total")] == (2.0, "1")
    assert ("agent", "mqtt_rejected_total") not in values, "MQTT never skips: nothing to say"
    assert values[("agent", "sensor_community_backlog")] == (7.0, "{measurement}")
    assert values[("agent", "sensor_community_dropped_total")] == (3.0, "{measurement}")
    assert values[("agent", "sensor_community_rejected_total")] == (9.0, "{measurement}")
    assert ("agent", "sensor_community_last_success_age") not in values, "never succeeded"
