"""A fleet of simulated boxes against distributed brokers, with a broker restart mid-run.

    nice python bench/fleet.py [--agents 500] [--processes 4] [--duration-s 120]
                               [--broker rabbitmq|mosquitto-bridge|both] [--rabbit-mirrored]

Every box is the agent's own code path (a SQLite ``Outbox`` fed with measurements,
drained by the real ``Forwarder`` with its reconnect jitter), a few hundred per
process. The brokers are private, on free ports: a Mosquitto edge bridged to a
central Mosquitto, and/or a two-node RabbitMQ cluster with the MQTT plugin. A
receiver on the central side records every (device_id, boot_id, seq).

The run: cold start (first-connect jitter), ``duration/2`` s of steady publishing,
the broker restarted (the edge; for RabbitMQ node b, then node a), everyone back,
``duration/2`` s more, then the feed stops and every outbox drains. Printed: how
the fleet reconnected (delay after the broker was back, p50/p95 spacing between
consecutive reconnects, spread, peak connects/s, failed attempts), broker CPU and
RSS from /proc, messages/s at the receiver, and the loss check (every seq of every
box must arrive; duplicates are allowed and counted), and what a new subscriber
sees of the boxes' retained status on each broker. Ctrl-C stops everything and
removes the temporary directories. Not part of the test suite; docs/scaling.md
has the figures and what they mean.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType

from _broker import Recorder, wait_until
from _fleet_agents import AgentResult, AgentSpec, WorkerSpec, run_worker
from _fleet_brokers import (
    Endpoint,
    FleetBroker,
    MosquittoBridgePair,
    RabbitCluster,
    Restart,
    accepts_new_client,
    retained_statuses,
    wait_listening,
)
from _fleet_measure import ProcSampler, Restarted
from _fleet_report import SETTLE_S, Report, Run, build_report, print_report


class Workers:
    """The worker processes (spawned, not forked: the parent already runs threads)."""

    def __init__(self, specs: list[WorkerSpec]) -> None:
        context = multiprocessing.get_context("spawn")
        self._conns: list[Connection] = []
        self._procs = []
        for spec in specs:
            parent, child = context.Pipe()
            self._conns.append(parent)
            self._procs.append(context.Process(target=run_worker, args=(child, spec),
                                               name=f"fleet-worker-{spec.index}"))

    def start(self) -> None:
        for process in self._procs:
            process.start()

    def ask(self, command: str, timeout_s: float = 120.0) -> list:
        """Send a command to every worker at once; their answers, concatenated."""
        for conn in self._conns:
            conn.send(command)
        answers: list = []
        for conn, process in zip(self._conns, self._procs, strict=True):
            if not conn.poll(timeout_s):
                raise RuntimeError(f"{process.name} did not answer {command!r}")
            answer = conn.recv()
            answers.extend(answer or [])
        return answers

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None and p.is_alive()]

    def terminate(self) -> None:
        for process in self._procs:
            if process.is_alive():
                process.terminate()
        for process in self._procs:
            process.join(10)


def worker_specs(args: argparse.Namespace, broker: FleetBroker,
                 outbox_dir: Path) -> list[WorkerSpec]:
    """Boxes numbered fleet-0000.., spread round-robin over the broker's endpoints."""
    endpoints = broker.agent_endpoints()
    overrides = {key: getattr(args, key) for key in
                 ("first_connect_jitter_s", "reconnect_min_s", "reconnect_max_s")
                 if getattr(args, key) is not None}
    agents = [AgentSpec(f"fleet-{k:04d}", endpoints[k % len(endpoints)].host,
                        endpoints[k % len(endpoints)].port) for k in range(args.agents)]
    return [WorkerSpec(i, tuple(agents[i::args.processes]), broker.protocol,
                       str(outbox_dir / f"worker-{i}"), args.rate, overrides)
            for i in range(args.processes)]


def wait_connected(workers: Workers, timeout_s: float) -> bool:
    def all_up() -> bool:
        return all(s.connected for s in workers.ask("status"))
    return wait_until(all_up, timeout_s, step_s=0.5)


def measurement_messages(receiver: Recorder) -> int:
    return len(receiver.on("/measurements"))


def wait_delivered(workers: Workers, receiver: Recorder, timeout_s: float,
                   stall_s: float = 60.0) -> bool:
    """Every outbox empty, then every measurement numbered at the receiver; False when
    the receiver got nothing new for ``stall_s`` (lost) or ``timeout_s`` ran out.

    A box's empty outbox only means a broker acknowledged everything; on a busy machine
    the receiver can be minutes behind, and what is still queued is not lost.
    """
    deadline = time.monotonic() + timeout_s
    wait_until(lambda: all(s.depth == 0 for s in workers.ask("status")), timeout_s, 0.5)
    expected = sum(s.added for s in workers.ask("status"))
    seen: set[tuple[str, str, int]] = set()
    parsed, best, since = 0, -1, time.monotonic()
    while time.monotonic() < deadline:
        messages = receiver.on("/measurements")  # append-only: parse only what is new
        for message in messages[parsed:]:
            body = json.loads(message.payload)
            seen.update((body["device_id"], body["boot_id"], m["seq"])
                        for m in body["measurements"])
        parsed = len(messages)
        if len(seen) >= expected:
            return True
        if len(seen) > best:
            best, since = len(seen), time.monotonic()
        elif time.monotonic() - since > stall_s:
            return False
        time.sleep(1.0)
    return False


def restart(step: Restart, broker: FleetBroker, workers: Workers,
            timeout_s: float) -> Restarted:
    """Stop, see whether the other nodes take new clients meanwhile, start, and wait until
    every box of the restarted node has connected again (and every other box is up)."""
    others = [e for e in broker.agent_endpoints() if e != step.endpoint]
    before = {s.device_id: s.connects for s in workers.ask("status")
              if node_endpoint(broker, s.device_id) == step.endpoint}
    t_stop = time.monotonic()
    step.stop()
    others_accept = all(accepts_new_client(endpoint) for endpoint in others) \
        if others else None
    step.start()
    t_back = wait_listening(step.endpoint, 300.0)
    if t_back is None:
        raise RuntimeError(f"{step.label}: broker did not come back")

    def back() -> bool:
        return all(s.connected and s.connects > before.get(s.device_id, -1)
                   for s in workers.ask("status"))

    if not wait_until(back, timeout_s, step_s=0.5):
        log(f"warning: {step.label}: not every box was back within {timeout_s:.0f} s")
    return Restarted(step.label, t_stop, t_back, time.monotonic(), others_accept)


def node_endpoint(broker: FleetBroker, device_id: str) -> Endpoint:
    """The endpoint a box was given (round-robin by its number, see worker_specs)."""
    endpoints = broker.agent_endpoints()
    return endpoints[int(device_id.rsplit("-", 1)[1]) % len(endpoints)]


def run_scenario(broker: FleetBroker, args: argparse.Namespace, outbox_dir: Path) -> Report:
    """Start brokers, receiver, fleet; publish, restart, drain; gather every figure."""
    with ExitStack() as stack:
        log(f"{broker.name}: starting brokers")
        broker.start()
        stack.callback(broker.stop)
        receiver = Recorder(broker.receiver, topic="fleet/#",  # type: ignore[arg-type]
                            client_id="fleet-receiver").start()
        stack.callback(receiver.stop)
        workers = Workers(worker_specs(args, broker, outbox_dir))
        stack.callback(workers.terminate)
        sampler = ProcSampler(lambda: {
            **{label: [pid] for label, pid in broker.pids().items() if pid},
            "agents": workers.pids(), "receiver": [os.getpid()]})
        sampler.start()
        stack.callback(sampler.stop)

        t_start, load_before = time.monotonic(), os.getloadavg()[0]
        workers.start()
        log(f"{broker.name}: {args.agents} agents starting in {args.processes} processes")
        if not wait_connected(workers, 180):
            raise RuntimeError("not every box connected within 180 s")
        t_steady = time.monotonic()
        sent_before = measurement_messages(receiver)
        acked_before = sum(s.acked for s in workers.ask("status"))
        time.sleep(args.duration_s / 2)
        steady_s = time.monotonic() - t_steady
        steady_msgs = (measurement_messages(receiver) - sent_before) / steady_s
        steady_acked = (sum(s.acked for s in workers.ask("status")) - acked_before) / steady_s
        restarts = []
        for step in broker.restarts():
            log(f"{broker.name}: {step.label}")
            restarts.append(restart(step, broker, workers, args.reconnect_timeout_s))
            time.sleep(SETTLE_S)
        log(f"{broker.name}: all back; {args.duration_s / 2:.0f} s more, then drain")
        time.sleep(args.duration_s / 2)
        workers.ask("stop-feeding")
        if not wait_delivered(workers, receiver, 900):
            log(f"{broker.name}: the receiver stopped getting measurements before all arrived")
        offline = [m.topic for m in receiver.on("/status") if m.payload == b"offline"]
        offline_seen = (len(offline), len(set(offline)))
        retained = retained_statuses(broker.status_endpoints(),
                                     [f"fleet-{k:04d}" for k in range(args.agents)])
        results: list[AgentResult] = workers.ask("finish", timeout_s=300)
        elapsed = time.monotonic() - t_start
        sampler.stop()
        return build_report(broker, args, Run(receiver, results, sampler, restarts, t_start,
                                              t_steady, steady_s, steady_msgs, steady_acked,
                                              offline_seen,
                                              retained, elapsed,
                                              (load_before, os.getloadavg()[0])))


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--duration-s", type=float, default=120.0,
                        help="steady publishing: half before the restart, half after")
    parser.add_argument("--broker", choices=("rabbitmq", "mosquitto-bridge", "both"),
                        default="both")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="measurements per box per second (default 1)")
    parser.add_argument("--reconnect-timeout-s", type=float, default=300.0)
    parser.add_argument("--outbox-dir", type=Path,
                        default=Path("/dev/shm") if Path("/dev/shm").is_dir() else None,
                        help="where the boxes' SQLite files go (default: tmpfs)")
    parser.add_argument("--rabbit-mirrored", action="store_true",
                        help="mirror the receiver's queue to both RabbitMQ nodes (ha-mode all)")
    parser.add_argument("--keep", action="store_true", help="keep logs and data dirs")
    for key in ("first_connect_jitter_s", "reconnect_min_s", "reconnect_max_s"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=float, default=None,
                            help="override the agent's default")
    args = parser.parse_args()
    if args.agents < 1 or not 1 <= args.processes <= args.agents:
        parser.error("need 1 <= processes <= agents")
    return args


def interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, interrupt)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # ~5 fds a box, 2 per broker
    makers = {"mosquitto-bridge": MosquittoBridgePair,
              "rabbitmq": lambda path: RabbitCluster(path, mirrored=args.rabbit_mirrored)}
    names = ["mosquitto-bridge", "rabbitmq"] if args.broker == "both" else [args.broker]
    work = Path(tempfile.mkdtemp(prefix="fleet-brokers-"))
    outboxes = Path(tempfile.mkdtemp(prefix="fleet-outboxes-", dir=args.outbox_dir))
    reports = []
    try:
        for name in names:
            broker = makers[name](work / name)
            reports.append(run_scenario(broker, args, outboxes / name))
            print_report(reports[-1])
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        if args.keep:
            log(f"kept {work} and {outboxes}")
        else:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(outboxes, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
