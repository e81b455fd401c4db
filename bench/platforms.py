"""One simulated run, every platform: what each server stored of the same minutes.

    nice -n 10 python bench/platforms.py [--minutes 10] [--window 60]

Starts the five peers the integration tests use, each on a free port and each by the
tests' own helper: Mosquitto (tests/mqtt_broker.py, with a recording subscriber),
InfluxDB 1.x (tests/influxd.py), a django-ogc-sensorthings server
(tests/sensorthings/server.py), the strict Sensor.Community stand-in
(tests/publish/sensor_community_server.py; feinstaub-api itself cannot run here) and
Home Assistant (tests/homeassistant_peer.py, onboarded, MQTT added, with the recorder
so its history can be counted). Then one ``lokaalmeten simulate`` feeds them all: every
sensor Sensor.Community has a pin for (SDS011, BMP280, SHT3x, BME280, the microphone
meter, SCD30) plus an SCD41, which it has none for. After ``--minutes`` the daemon gets
SIGTERM and drains as systemd would stop it; then every server is asked what it holds
and the answers are printed side by side per (sensor, quantity), with what was still in
the outbox. Each column is the server's own answer, never what the agent believes it
sent: the differences are the point (warm-up windows Sensor.Community never gets,
quantities it has no name for, a window still queued at the stop).

No assertions: a bench. A peer that does not start stops the bench with its reason.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _broker import Broker, Recorder

from agent.config import load_config
from agent.config.sinks import sensor_community_channels
from agent.publish.homeassistant import node_id
from tests.homeassistant_peer import HomeAssistant, ha_python
from tests.influxd import InfluxServer
from tests.integration.fast_box import fast_head
from tests.publish.sensor_community_server import SensorCommunityServer
from tests.sensorthings.server import StaServer, sta_python

ROOT = Path(__file__).resolve().parents[1]
DEVICE = "platforms"
NODE = "raspi-00000000b3nc4001"
DB = "lokaalmeten"
SC_SENSORS = {"pm": "sds011", "baro": "bmp280", "rh": "sht3x", "climate": "bme280",
              "noise": "microphone", "co2": "scd30"}
"""Sensor id → model: every model with a Sensor.Community pin, one per pin."""
OTHER_SENSORS = {"co2b": "scd41"}
"""Models Sensor.Community has no sensor type for: its column stays empty."""
RECORDER_YAML = "recorder:\n  commit_interval: 1\nhistory:\n"
"""Appended to the peer's configuration: HA keeps only the latest state without it."""
Key = tuple[str, str]


@dataclass
class Seen:
    """What one server holds of one (sensor, quantity): how many windows, which ends."""

    n: int = 0
    first_ms: int | None = None
    last_ms: int | None = None

    def add(self, utc_ms: int) -> None:
        self.n += 1
        self.first_ms = utc_ms if self.first_ms is None else min(self.first_ms, utc_ms)
        self.last_ms = utc_ms if self.last_ms is None else max(self.last_ms, utc_ms)


Tally = dict[Key, Seen]


def tally(windows: Iterable[tuple[Key, int]]) -> Tally:
    found: Tally = defaultdict(Seen)
    for key, utc_ms in windows:
        found[key].add(utc_ms)
    return dict(found)


@dataclass
class Peers:
    """The five servers, started; ``ExitStack`` stops them whatever happens."""

    broker: Broker
    recorder: Recorder
    influx: InfluxServer
    sta: StaServer
    sc: SensorCommunityServer
    ha: HomeAssistant
    started_s: dict[str, float] = field(default_factory=dict)


def timed(label: str, started: dict[str, float], start: float) -> None:
    started[label] = time.monotonic() - start
    print(f"  {label} up in {started[label]:.1f} s", flush=True)


def start_peers(work: Path, stack: ExitStack) -> Peers:
    """Every server, each by the tests' helper; a peer that fails raises with its reason
    (the helpers name their log), and whatever started is stopped by ``stack``."""
    started: dict[str, float] = {}
    print("starting peers", flush=True)
    begin = time.monotonic()
    broker = Broker(work)
    broker.start()
    stack.callback(broker.stop)
    recorder = Recorder(broker, topic="lokaalmeten/#", client_id="bench-platforms").start()
    stack.callback(recorder.stop)
    timed("mosquitto", started, begin)
    for name in ("influx", "sta", "ha"):
        (work / name).mkdir()
    begin = time.monotonic()
    influx = InfluxServer(work / "influx").start()
    stack.callback(influx.stop)
    influx.query(f"CREATE DATABASE {DB}")
    timed("influxd", started, begin)
    begin = time.monotonic()
    sta = StaServer(sta_python(), work / "sta")
    sta.start()
    stack.callback(sta.stop)
    timed("sensorthings", started, begin)
    sc = SensorCommunityServer(nodes={NODE: {"1", "3", "7", "11", "15", "17"}}).start()
    stack.callback(sc.stop)
    begin = time.monotonic()
    ha = HomeAssistant(ha_python(), work / "ha")
    with (ha.config_dir / "configuration.yaml").open("a") as config:
        config.write(RECORDER_YAML)
    ha.start()
    stack.callback(ha.stop)
    ha.onboard()
    ha.add_mqtt(broker)
    timed("home assistant", started, begin)
    return Peers(broker, recorder, influx, sta, sc, ha, started)


def sensors_toml(window_s: int) -> str:
    """The sensors, each on its wire-level emulator; the microphone's interval is its
    window so its percentiles are exact (as in examples/simulated.toml)."""
    blocks = []
    for sensor, model in {**SC_SENSORS, **OTHER_SENSORS}.items():
        if model == "microphone":
            where, interval = 'device = "default"', window_s
        elif model == "sds011":
            where, interval = 'port = "/dev/ttyUSB0"', 5
        elif model == "bmp280":  # bus 1 has the BME280 at 0x76 and 0x77 is free on 3
            where, interval = "bus = 3\naddress = 0x77", 5
        else:
            where, interval = "bus = 1", 5
        blocks.append(f'[sensors.{sensor}]\nmodel = "{model}"\n{where}\n'
                      f"interval_s = {interval}\nwindow_s = {window_s}\n")
    return "\n".join(blocks)


def agent_toml(peers: Peers, window_s: int) -> str:
    """One config, every sink: what a user with all four platforms would write."""
    fast = "retry_min_s = 1\nretry_max_s = 10\nrefused_retry_s = 30\n"
    return fast_head(DEVICE, 60) + f"""
[location]
latitude = 52.0907
longitude = 5.1214
name = "bench"

{sensors_toml(window_s)}
[mqtt.home_assistant]

[sinks.sensor_community]
node_id = "{NODE}"
sensors = {json.dumps(sorted(SC_SENSORS))}
url = "{peers.sc.url}"
{fast}
[sinks.influxdb]
url = "{peers.influx.url}"
database = "{DB}"
{fast}
[sinks.sensorthings]
url = "{peers.sta.url}"
{fast}"""


def agent_command(config: Path, peers: Peers, state: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "agent", *args, "--config", str(config),
            *(["--broker", f"{peers.broker.host}:{peers.broker.port}",
               "--state-dir", str(state)] if args == ("simulate",) else [])]


def check_config(config: Path, peers: Peers, state: Path) -> None:
    """``check-config`` first: a refused config should not cost the whole run."""
    done = subprocess.run(agent_command(config, peers, state, "check-config"),
                          capture_output=True, text=True, check=False, env=agent_env())
    if done.returncode != 0:
        raise SystemExit(f"check-config refused {config}:\n{done.stdout}{done.stderr}")
    for line in (done.stdout + done.stderr).splitlines():
        if "warn" in line.lower():
            print(f"  check-config: {line}", flush=True)


def agent_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def run_agent(config: Path, peers: Peers, work: Path, minutes: float,
              stack: ExitStack) -> tuple[dict[str, dict], float, int]:
    """Run the daemon ``minutes``, snapshot Home Assistant just before the stop (the
    SIGTERM's offline status makes every entity ``unavailable``), SIGTERM, wait for the
    drain. Returns (HA states, seconds the stop took, exit code)."""
    log = (work / "agent.log").open("ab")
    process = subprocess.Popen(agent_command(config, peers, work / "state", "simulate"),
                               stdout=log, stderr=log, env=agent_env())
    stack.callback(lambda: process.poll() is None and process.kill())
    end = time.monotonic() + minutes * 60
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(60.0, left))
        if process.poll() is not None:
            raise SystemExit(f"the daemon exited ({process.returncode}); see {log.name}")
        windows = sum(1 for m in peers.recorder.measurements() if m["topic"] == "measurements")
        print(f"  {minutes - max(left - 60, 0) / 60:5.1f} min: {windows} windows on MQTT",
              flush=True)
    states = peers.ha.states()
    stop = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(60)
    return states, time.monotonic() - stop, code


# -- what each server holds --------------------------------------------------------------

def mqtt_windows(recorder: Recorder) -> Tally:
    """Windows the broker delivered on ``…/measurements`` (health has its own topic)."""
    return tally(((m["sensor"], m["quantity"]), m["time_ms"])
                 for m in recorder.measurements() if m["topic"] == "measurements")


def mqtt_warm(recorder: Recorder) -> dict[Key, int]:
    warm: dict[Key, int] = defaultdict(int)
    for m in recorder.measurements():
        if m["topic"] == "measurements" and "warming_up" in m.get("flags", []):
            warm[(m["sensor"], m["quantity"])] += 1
    return warm


def influx_points(influx: InfluxServer) -> Tally:
    """Points per field: every quantity has a ``<q>_flags`` field on each point."""
    found = []
    for model in sorted(set({**SC_SENSORS, **OTHER_SENSORS}.values())):
        for row in influx.rows(f'SELECT * FROM "{model}"', DB):
            for name in (k[:-len("_flags")] for k in row if k.endswith("_flags")):
                if row.get(name) is not None:
                    found.append(((row["sensor"], name), int(row["time"])))
    return tally(found)


def iso_ms(text: str) -> int:
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def sta_observations(sta: StaServer) -> Tally:
    """Observations per Datastream, keyed by ``properties.lokaalmeten_id``
    (device/sensor/model/quantity); window end = the phenomenonTime interval's end."""
    found = []
    for stream in sta.all("Datastreams"):
        _, sensor, _, quantity = stream["properties"]["lokaalmeten_id"].split("/")
        for o in sta.all(stream["Observations@iot.navigationLink"]):
            found.append(((sensor, quantity), iso_ms(o["phenomenonTime"].split("/")[-1])))
    return tally(found)


def sc_values(sc: SensorCommunityServer, config: Path) -> Tally:
    """Values the stand-in stored, mapped back through the profiles' names and pins."""
    agent = load_config(config)
    assert agent.sinks.sensor_community is not None
    channels = sensor_community_channels(agent.sinks.sensor_community,
                                         agent.resolved_sensors())
    back = {(str(pin), value_type): key for key, (pin, value_type) in channels.items()}
    return tally((back[(pin, value_type)], round(when.timestamp() * 1000))
                 for pin in sorted({str(p) for p, _ in channels.values()})
                 for when, values in sc.values(NODE, pin) for value_type in values)


def ha_entity(sensor: str, quantity: str) -> str:
    return f"sensor.{node_id(DEVICE)}_{sensor}_{quantity}"


def ha_changes(ha: HomeAssistant, keys: Iterable[Key], since: datetime) -> dict[Key, int]:
    """Numeric states the recorder kept per entity ({} if the history API is absent)."""
    entities = {ha_entity(*k): k for k in keys}
    query = urllib.parse.urlencode({"filter_entity_id": ",".join(entities),
                                    "significant_changes_only": "0"})
    url = (f"{ha.base}/api/history/period/{since.isoformat()}?{query}"
           "&minimal_response&no_attributes")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {ha.token}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            history = json.loads(response.read())
    except OSError as exc:
        print(f"  Home Assistant history unavailable: {exc}")
        return {}
    counts: dict[Key, int] = {}
    for states in history:
        if states:
            counts[entities[states[0]["entity_id"]]] = sum(
                1 for s in states if numeric(s["state"]))
    return counts


def numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def outbox_left(state: Path) -> dict[str, dict[Key, int]]:
    """Per sink, the rows past its position at the stop (undelivered, or not yet
    skipped): the outbox is where a difference between servers is explained."""
    with sqlite3.connect(state / "outbox.sqlite") as db:
        positions = dict(db.execute("SELECT sink, position FROM sink_positions"))
        return {sink: {(s, q): n for s, q, n in db.execute(
            "SELECT sensor, quantity, count(*) FROM outbox WHERE id > ? "
            "GROUP BY sensor, quantity", (position,))} for sink, position in positions.items()}


# -- the table ---------------------------------------------------------------------------

def hms(utc_ms: int | None) -> str:
    return "—" if utc_ms is None else datetime.fromtimestamp(utc_ms / 1000, UTC) \
        .strftime("%H:%M:%S")


def count(seen: Seen | None) -> str:
    return "—" if seen is None else str(seen.n)


def left_note(key: Key, left: dict[str, dict[Key, int]]) -> str:
    short = {"mqtt": "mqtt", "sensor_community": "sc", "influxdb": "influx",
             "sensorthings": "sta"}
    return " ".join(f"{short.get(sink, sink)}:{rows[key]}" for sink, rows in sorted(left.items())
                    if rows.get(key))


def differs(key: Key, servers: dict[str, Tally], warm: dict[Key, int]) -> bool:
    """MQTT, InfluxDB and SensorThings should agree; Sensor.Community should hold the
    settled (not warming-up) windows of what it has a name for."""
    n = {name: (t[key].n if key in t else 0) for name, t in servers.items()}
    sc = servers["Sensor.Community"].get(key)
    return len({n["MQTT"], n["InfluxDB"], n["SensorThings"]}) > 1 or \
        (sc is not None and sc.n != n["MQTT"] - warm.get(key, 0))


def print_table(servers: dict[str, Tally], warm: dict[Key, int], ha_states: dict[str, dict],
                changes: dict[Key, int], left: dict[str, dict[Key, int]]) -> None:
    keys = sorted(set().union(*servers.values()))
    print(f"\n{'sensor':8} {'quantity':22} {'MQTT':>4} {'warm':>4} {'Influx':>6} {'STA':>4} "
          f"{'SC':>4} {'HA hist':>7}  {'HA state':>9} {'HA unit':8} {'HA updated':10}  "
          "outbox at stop")
    for key in keys:
        state = ha_states.get(ha_entity(*key))
        unit = "" if state is None else state["attributes"].get("unit_of_measurement", "")
        updated = "—" if state is None else state["last_updated"][11:19]
        mark = " ≠" if differs(key, servers, warm) else ""
        print(f"{key[0]:8} {key[1]:22} {count(servers['MQTT'].get(key)):>4} "
              f"{warm.get(key, 0):>4} {count(servers['InfluxDB'].get(key)):>6} "
              f"{count(servers['SensorThings'].get(key)):>4} "
              f"{count(servers['Sensor.Community'].get(key)):>4} "
              f"{changes.get(key, '—')!s:>7}  {'—' if state is None else state['state']:>9} "
              f"{unit:8} {updated:10}  {left_note(key, left)}{mark}")


def print_spans(servers: dict[str, Tally]) -> None:
    print(f"\n{'server':17} {'windows':>7} {'series':>6} {'first window':>12} "
          f"{'last window':>11}")
    for name, found in servers.items():
        firsts = [s.first_ms for s in found.values() if s.first_ms is not None]
        lasts = [s.last_ms for s in found.values() if s.last_ms is not None]
        print(f"{name:17} {sum(s.n for s in found.values()):7d} {len(found):6d} "
              f"{hms(min(firsts, default=None)):>12} {hms(max(lasts, default=None)):>11}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10, help="simulated run length")
    parser.add_argument("--window", type=int, default=60,
                        help="window_s of every sensor (Sensor.Community warns below 60)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-platforms-"))
    with ExitStack() as stack:
        peers = start_peers(work, stack)
        config = work / "agent.toml"
        config.write_text(agent_toml(peers, args.window))
        check_config(config, peers, work / "state")
        began = datetime.now(UTC) - timedelta(seconds=5)
        print(f"running lokaalmeten simulate for {args.minutes:g} min "
              f"({args.window} s windows)", flush=True)
        ha_states, stop_s, code = run_agent(config, peers, work, args.minutes, stack)
        print(f"  SIGTERM: exited {code} after {stop_s:.1f} s", flush=True)
        time.sleep(3)  # the broker's last deliveries, HA's recorder commit (1 s)
        keys = mqtt_windows(peers.recorder).keys()
        servers = {"MQTT": mqtt_windows(peers.recorder),
                   "InfluxDB": influx_points(peers.influx),
                   "SensorThings": sta_observations(peers.sta),
                   "Sensor.Community": sc_values(peers.sc, config)}
        print_table(servers, mqtt_warm(peers.recorder), ha_states,
                    ha_changes(peers.ha, keys, began), outbox_left(work / "state"))
        print_spans(servers)
        print(f"\nSC stand-in answers: {peers.sc.answers.count(201)} × 201, "
              f"{len(peers.sc.answers) - peers.sc.answers.count(201)} other; "
              f"peer start-up (s): "
              + ", ".join(f"{k} {v:.0f}" for k, v in peers.started_s.items()))
        print(f"work dir (agent.log, peer logs): {work}")


if __name__ == "__main__":
    main()
