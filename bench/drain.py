"""How fast a backlog drains: N measurements queued while offline, then the broker returns.

    python bench/drain.py [--count 10000] [--batch 200]

Prints measurements/s and messages/s from the first connect to the last PUBACK,
against a local Mosquitto started on a free port.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from _broker import Broker

from agent.config.mqtt import MqttConfig
from agent.models import Measurement, Stats
from agent.publish.forwarder import Forwarder
from agent.storage import Outbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-drain-"))
    outbox = Outbox(work / "outbox.sqlite", "0" * 32, max_rows=10**7, max_age_days=30)
    now = time.time_ns() // 1_000_000
    outbox.add(Measurement("pm", "pm2_5", 10 + i % 7 * 0.1, "ug/m3", now + i, 0.0,
                           stats=Stats(9.0, 12.0, 60, 60.0)) for i in range(args.count))
    outbox.commit()
    broker = Broker(work)
    broker.start()
    config = MqttConfig(host=broker.host, port=broker.port, max_batch=args.batch,
                        first_connect_jitter_s=0)
    forwarder = Forwarder(outbox, config, "bench-box", "bench-box", rng=random.Random(0))
    started = time.perf_counter()
    forwarder.start()

    last_commit = started
    while forwarder.stats().measurements_acked < args.count:
        time.sleep(0.005)
        if time.perf_counter() - last_commit >= 1.0:
            outbox.commit()  # as the agent's main loop does: acked deletions once a second
            last_commit = time.perf_counter()
    elapsed = time.perf_counter() - started
    stats = forwarder.stats()
    forwarder.stop()
    forwarder.join(10)
    broker.stop()
    print(f"backlog {args.count} measurements, batch {args.batch}: drained in {elapsed:.2f} s "
          f"= {args.count / elapsed:,.0f} measurements/s, "
          f"{stats.messages_sent / elapsed:,.1f} messages/s ({stats.messages_sent} messages)")


if __name__ == "__main__":
    main()
