"""The periodic log line: counts only, down sensors named."""

from __future__ import annotations

from agent.status.facts import CameraFacts
from agent.status.summary import summary_line
from tests.status.boxes import broker, healthy, sensor


def test_summary_of_a_healthy_box() -> None:
    line = summary_line(healthy(), 1000, 600)
    assert line == ("sent 1234 measurements (+234 in 10 min), backlog 0, broker connected, "
                    "sensors up 1/1, cameras up 1/1")


def test_summary_names_what_is_down() -> None:
    facts = healthy(broker=broker(connected=False), outbox_depth=512, outbox_dropped_total=3,
                    sensors=(sensor(), sensor(sensor_id="co2", up=False)),
                    cameras=(CameraFacts("square", True, False, 2, 0),))
    line = summary_line(facts, 1234, 300)
    assert line == ("sent 1234 measurements (+0 in 5 min), backlog 512, dropped 3, "
                    "broker NOT connected, sensors up 1/2 (down: co2), cameras up 0/1")
