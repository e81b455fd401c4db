"""Per-sink health travels in the heartbeat as the box's own quantities."""

from __future__ import annotations

from agent.config.camera import CameraConfig
from agent.config.profiles import all_profiles
from agent.health.heartbeat import (
    CAMERA_HEALTH,
    SENSOR_HEALTH,
    AgentStatus,
    SensorStatus,
    SinkStatus,
    heartbeat,
    is_health,
)
from agent.health.system import SystemFacts
from agent.vision.record import Kind, schema_for


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


def test_health_names_are_exactly_the_heartbeats_and_no_measured_quantity_uses_one() -> None:
    sensor = SensorStatus("pm", True, False, 0, 0, 0, 0, 0, 0, 0, 0, 1.0)
    beat = heartbeat(AgentStatus(1.0, 0, 0, True, 1, 1),
                     SystemFacts(None, None, 0.1, None, None, None), [sensor], 0, 0.0)
    assert {m.quantity for m in beat if m.sensor_id == "pm"} == SENSOR_HEALTH
    assert all(is_health(m.sensor_id, m.quantity) for m in beat)
    camera = CameraConfig.model_validate({
        "source": "/dev/video0", "lines": [{"name": "door", "x1": 0, "y1": 0, "x2": 9, "y2": 9}],
        "zones": [{"name": "kerb", "polygon": [[0, 0], [9, 0], [9, 9]], "area_m2": 4.0,
                   "density_on": 1.0, "density_off": 0.5}], "suppress_below": 0})
    counted = {q.name for q in schema_for(camera).quantities if q.kind is not Kind.STATUS}
    measured = {q.name for p in all_profiles().values() for q in p.quantities}
    assert not (counted | measured) & (SENSOR_HEALTH | CAMERA_HEALTH)
    assert not is_health("pm", "pm2_5_rh_corrected") and not is_health("street", "fps")
