"""A small fleet through a Mosquitto bridge pair: the edge restarts while its uplink is down.

The forwarder tests use one broker. In the field a district's boxes talk to an
edge broker that bridges to a central one, and the edge's PUBACK is all a box
ever sees: once the edge has acknowledged a measurement, the box deletes it. So
when the link to the centre is down, the edge holds the only copy, and an edge
restart then must not lose it. With the edge configured as docs/scaling.md says
(persistence, ``cleansession false`` on the bridge, a queue limit that fits a
drained backlog) every measurement of every box still reaches the central
receiver. The 500-box version, with figures, is ``bench/fleet.py``.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from agent.config.mqtt import MqttConfig
from agent.models import Measurement
from agent.publish.forwarder import Forwarder
from agent.storage import Outbox
from tests.mqtt_broker import Broker, Recorder, wait_until

BOXES = 20
pytestmark = pytest.mark.slow


def bridge_pair(tmp_path: Path) -> tuple[Broker, Broker]:
    """Central and edge, configured as docs/scaling.md says (the helper sets persistence)."""
    (tmp_path / "central").mkdir()
    (tmp_path / "edge").mkdir()
    central = Broker(tmp_path / "central")
    edge = Broker(tmp_path / "edge")
    limits = "max_queued_messages 100000\n"
    central.config.write_text(central.config.read_text() + limits)
    edge.config.write_text(edge.config.read_text() + limits + (
        "connection central\n"
        f"address {central.host}:{central.port}\n"
        "topic lokaalmeten/# out 1\n"
        "cleansession false\n"
        "remote_clientid edge-1\n"
        "restart_timeout 1 5\n"))
    return central, edge


def make_box(tmp_path: Path, edge: Broker, k: int) -> tuple[Outbox, Forwarder]:
    outbox = Outbox(tmp_path / f"box{k}.sqlite", f"{k:032x}", max_rows=10**6, max_age_days=1)
    config = MqttConfig(host=edge.host, port=edge.port, first_connect_jitter_s=1.0,
                        reconnect_min_s=0.2, reconnect_max_s=1.0)
    return outbox, Forwarder(outbox, config, f"box-{k}", f"lokaalmeten-box-{k}",
                             rng=random.Random(k))


def feed(boxes: list[tuple[Outbox, Forwarder]], stop: threading.Event,
         rounds: list[int]) -> None:
    """Like the daemon's main loop: a measurement per box, committed, five times a second."""
    while not stop.wait(0.2):
        rounds[0] += 1
        now = time.time_ns() // 1_000_000
        for outbox, forwarder in boxes:
            outbox.add([Measurement("pm", "pm2_5", 1.0, "ug/m3", now, time.monotonic())])
            outbox.commit()
            forwarder.notify()


def test_a_fleet_loses_nothing_when_its_edge_restarts_while_the_uplink_is_down(
        tmp_path: Path) -> None:
    central, edge = bridge_pair(tmp_path)
    central.start()
    edge.start()
    receiver = Recorder(central, topic="lokaalmeten/#").start()
    boxes = [make_box(tmp_path, edge, k) for k in range(BOXES)]
    stop = threading.Event()
    rounds = [0]
    feeder = threading.Thread(target=feed, args=(boxes, stop, rounds))
    try:
        for _, forwarder in boxes:
            forwarder.start()
        feeder.start()
        assert wait_until(lambda: all(f.stats().connected for _, f in boxes), 10)
        central.stop()  # the uplink is down: the edge acknowledges and queues
        time.sleep(1.0)
        edge.stop()  # SIGTERM: mosquitto saves what it has not bridged yet
        edge.start()
        assert wait_until(lambda: all(f.stats().connects >= 2 and f.stats().connected
                                      for _, f in boxes), 15), "every box came back"
        time.sleep(0.5)
        central.start()
        time.sleep(1.0)
        stop.set()
        feeder.join(5)
        expected = {(f"box-{k}", seq) for k in range(BOXES) for seq in range(1, rounds[0] + 1)}

        def arrived() -> set[tuple[str, int]]:
            return {(m["device_id"], m["seq"]) for m in receiver.measurements()}

        assert wait_until(lambda: expected <= arrived(), 15), \
            f"{len(expected - arrived())} of {len(expected)} measurements never arrived"
    finally:
        stop.set()
        for _, forwarder in boxes:
            forwarder.stop(drain_timeout_s=1.0)
        for _, forwarder in boxes:
            forwarder.join(10)
        receiver.stop()
        edge.stop()
        central.stop()
    counts = Counter((m["device_id"], m["seq"]) for m in receiver.measurements())
    assert set(counts) == expected, "nothing arrives that no box measured"
    online = {m.topic for m in receiver.on("/status") if m.payload == b"online"}
    assert len(online) == BOXES, "every box's status crossed the bridge"
