"""What a second sink costs the outbox: commits, claims and the heartbeat's backlog count.

    python bench/sinks.py [--rows 200000] [--acks 2000]

An outbox holds ``--rows`` measurements that Sensor.Community has not sent (it has
been away) while MQTT keeps up; then, per step, MQTT acknowledges ``--acks`` rows
and the outbox commits (settling positions, deleting nothing: the other sink lags),
the lagging sink claims a batch at its position, and the heartbeat asks each sink's
backlog. The same steps with MQTT as the only sink are the baseline. Prints
milliseconds per operation (median of 20).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from agent.models import Measurement, Stats
from agent.storage import Outbox


def fill(outbox: Outbox, rows: int) -> None:
    now = time.time_ns() // 1_000_000
    for start in range(0, rows, 50_000):
        outbox.add(Measurement("pm", "pm2_5", 10.0, "ug/m3", now + i, float(i),
                               stats=Stats(9.0, 12.0, 60, 60.0))
                   for i in range(start, min(rows, start + 50_000)))
        outbox.commit()


def median_ms(operation: Callable[[], object], repeat: int = 20) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        operation()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(work: Path, rows: int, acks: int, sinks: tuple[str, ...]) -> dict[str, float]:
    outbox = Outbox(work / f"{len(sinks)}.sqlite", "0" * 32, max_rows=10**8,
                    max_age_days=3650, sinks=sinks)
    fill(outbox, rows)
    cursor = [0]

    def ack_and_commit() -> None:
        records = outbox.claim(cursor[0], acks, "mqtt")
        outbox.ack((r.row_id for r in records), "mqtt")
        cursor[0] = records[-1].row_id
        outbox.add([Measurement("pm", "pm2_5", 1.0, "ug/m3", 0, 0.0)])
        outbox.commit()

    figures = {"MQTT acks + commit": median_ms(ack_and_commit),
               "claim 500 at the oldest row": median_ms(lambda: outbox.claim(0, 500, sinks[-1])),
               "backlog of the sink ahead": median_ms(lambda: outbox.sink_figures("mqtt")),
               "backlog of the sink behind": median_ms(lambda: outbox.sink_figures(sinks[-1]))}
    outbox.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--acks", type=int, default=2000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sinks-"))
    one = measure(work, args.rows, args.acks, ("mqtt",))
    two = measure(work, args.rows, args.acks, ("mqtt", "sensor_community"))
    print(f"{args.rows} stored rows, {args.acks} acknowledgements per commit (ms, median)")
    print(f"{'operation':32} {'mqtt only':>10} {'+ lagging sink':>15}")
    for name, value in one.items():
        print(f"{name:32} {value:10.2f} {two[name]:15.2f}")


if __name__ == "__main__":
    main()
