"""The forwarder against a real Mosquitto: delivery, acks, outages, auth and TLS."""

from __future__ import annotations

import json
import random
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agent.config.mqtt import MqttConfig
from agent.models import Measurement
from agent.publish.forwarder import Forwarder
from agent.storage import Outbox
from agent.supervision import Backoff, RestartPolicy
from tests.mqtt_broker import Broker, Recorder, wait_until


def measurements(start: int, count: int) -> list[Measurement]:
    now = time.time_ns() // 1_000_000
    return [Measurement("pm", "pm2_5", float(i), "ug/m3", now, 0.0)
            for i in range(start, start + count)]


def mqtt_config(broker: Broker, **overrides: object) -> MqttConfig:
    """A config for the test broker on localhost, where a plain-text password is acceptable."""
    values = {"host": broker.host, "port": broker.port, "first_connect_jitter_s": 0,
              "reconnect_min_s": 0.2, "reconnect_max_s": 0.5,
              "allow_plaintext_credentials": True, **overrides}
    return MqttConfig.model_validate(values)


def make_outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox.sqlite", "f" * 32, max_rows=10**6, max_age_days=1)


def start_forwarder(outbox: Outbox, config: MqttConfig,
                    restarts: RestartPolicy | None = None) -> Forwarder:
    extra = {} if restarts is None else {"restarts": restarts}
    forwarder = Forwarder(outbox, config, "box-1", "lokaalmeten-box-1", rng=random.Random(1),
                          **extra)
    forwarder.start()
    return forwarder


def seqs(recorder: Recorder) -> list[int]:
    return [m["seq"] for m in recorder.measurements()]


def test_backoff_is_full_jitter_and_capped() -> None:
    """The reconnect policy (agent.supervision.Backoff with jitter, as the forwarder builds it)."""
    rng = random.Random(7)
    backoff = Backoff(1.0, 300.0, jitter=True)
    for attempt in range(1, 40):
        bound = min(300.0, 1.0 * 2 ** (attempt - 1))
        delays = [backoff.delay_s(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= bound for d in delays)
        assert max(delays) > 0.7 * bound, "delays spread over the whole range"


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_delivers_in_order_and_deletes_only_after_puback(
        tmp_path: Path, broker: Broker, recorder: Recorder, protocol: str) -> None:
    outbox = make_outbox(tmp_path)
    forwarder = start_forwarder(outbox, mqtt_config(broker, protocol=protocol))
    try:
        outbox.add(measurements(0, 250))
        outbox.commit()
        forwarder.notify()
        assert wait_until(lambda: len(seqs(recorder)) == 250, 10)
        assert wait_until(lambda: forwarder.stats().measurements_acked == 250, 5)
        outbox.commit()
        assert outbox.stats().depth == 0
    finally:
        forwarder.stop()
        forwarder.join(10)
    assert seqs(recorder) == list(range(1, 251))
    # The goodbye is acknowledged by the broker; its delivery to our subscriber may lag.
    assert wait_until(lambda: [m.payload for m in recorder.on("/box-1/status")][-1:]
                      == [b"offline"], 5)
    assert recorder.on("/box-1/status")[0].payload == b"online"
    sizes = [len(json.loads(m.payload)["measurements"]) for m in recorder.on("/measurements")]
    assert max(sizes) <= 200


@pytest.mark.slow  # a fault run: the broker stopped and started again, in real time
def test_broker_outage_loses_nothing_and_keeps_order(
        tmp_path: Path, broker: Broker, recorder: Recorder) -> None:
    outbox = make_outbox(tmp_path)
    forwarder = start_forwarder(outbox, mqtt_config(broker))
    try:
        outbox.add(measurements(0, 50))
        outbox.commit()
        forwarder.notify()
        assert wait_until(lambda: len(seqs(recorder)) == 50, 10)
        broker.stop()
        for batch in range(10):  # the sampler keeps going while the broker is away
            outbox.add(measurements(100 + batch * 30, 30))
            outbox.commit()
            time.sleep(0.1)
        assert not forwarder.stats().connected
        broker.start()
        assert wait_until(lambda: len(set(seqs(recorder))) == 350, 20)
    finally:
        forwarder.stop()
        forwarder.join(10)
    received = seqs(recorder)
    unique = list(dict.fromkeys(received))
    assert unique == list(range(1, 351)), "every measurement, in order, no gaps"
    assert forwarder.stats().connects >= 2


def test_username_and_password_file(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "box", "s3cret"],
                   check=True, capture_output=True)
    broker.config.write_text(broker.config.read_text().replace(
        "allow_anonymous true", f"allow_anonymous false\npassword_file {passwords}"))
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    broker.start()
    try:
        outbox = make_outbox(tmp_path)
        good = start_forwarder(outbox, mqtt_config(broker, username="box",
                                                   password_file=secret))
        assert wait_until(lambda: good.stats().connected, 10)
        good.stop()
        good.join(10)
        secret.write_text("wrong\n")
        bad = start_forwarder(outbox, mqtt_config(broker, username="box",
                                                  password_file=secret))
        assert wait_until(lambda: bad.stats().connect_failures >= 2, 10)
        assert "refused" in bad.stats().last_error
        assert not bad.stats().connected
        bad.stop()
        bad.join(10)
    finally:
        broker.stop()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.mark.slow  # makes a CA and certificates, starts a TLS broker (~11 s)
def test_tls_with_client_certificate(tmp_path: Path) -> None:
    """Mutual TLS: the broker demands a client certificate signed by our CA."""
    pki = tmp_path / "pki"
    pki.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=pki)
    for name, cn in (("server", "127.0.0.1"), ("client", "box-1")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=pki)
        ext = pki / f"{name}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1\n" if name == "server" else
                       "extendedKeyUsage=clientAuth\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", ext.name, "-out", f"{name}.crt",
                 cwd=pki)
    broker = Broker(tmp_path)
    broker.config.write_text(broker.config.read_text() + (
        f"cafile {pki}/ca.crt\ncertfile {pki}/server.crt\nkeyfile {pki}/server.key\n"
        "require_certificate true\n"))
    broker.start()
    try:
        outbox = make_outbox(tmp_path)
        outbox.add(measurements(0, 3))
        outbox.commit()
        tls = {"ca_file": pki / "ca.crt", "cert_file": pki / "client.crt",
               "key_file": pki / "client.key"}
        forwarder = start_forwarder(outbox, mqtt_config(broker, tls=tls))
        assert wait_until(lambda: forwarder.stats().measurements_acked == 3, 10)
        forwarder.stop()
        forwarder.join(10)
        anonymous = start_forwarder(outbox, mqtt_config(broker, tls={"ca_file": pki / "ca.crt"}))
        assert wait_until(lambda: anonymous.stats().connect_failures >= 1, 10)
        assert not anonymous.stats().connected
        anonymous.stop()
        anonymous.join(10)
    finally:
        broker.stop()


@pytest.mark.slow  # a fault run: refused publishes and real reconnect backoff
def test_broker_rejecting_publishes_keeps_rows_and_backs_off(tmp_path: Path) -> None:
    """MQTT 5 PUBACK 'not authorized': rows stay in the outbox, reconnects slow down."""
    broker = Broker(tmp_path)
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite lokaalmeten/+/status\n")  # measurements are not allowed
    broker.config.write_text(broker.config.read_text() + f"acl_file {acl}\n")
    broker.start()
    try:
        outbox = make_outbox(tmp_path)
        outbox.add(measurements(0, 5))
        outbox.commit()
        forwarder = start_forwarder(outbox, mqtt_config(broker, reconnect_min_s=0.3,
                                                        reconnect_max_s=5.0))
        assert wait_until(lambda: forwarder.stats().rejected >= 2, 10)
        time.sleep(2.0)
        stats = forwarder.stats()
        forwarder.stop()
        forwarder.join(10)
    finally:
        broker.stop()
    assert stats.measurements_acked == 0
    assert stats.connects <= 8, "exponential backoff, not a reconnect storm"
    outbox.commit()
    assert outbox.stats().depth == 5, "nothing is deleted without an accepting PUBACK"
    assert outbox.stats().poison_total == 0, "a broker refusing everything sets nothing aside"


def test_unreadable_password_file_is_retried_not_fatal(tmp_path: Path, broker: Broker) -> None:
    secret = tmp_path / "secret"
    secret.write_text("pw\n")
    config = mqtt_config(broker, username="box", password_file=secret)
    secret.unlink()  # removed after validation, e.g. a botched rotation
    forwarder = start_forwarder(make_outbox(tmp_path), config)
    assert wait_until(lambda: forwarder.stats().connect_failures >= 2, 10)
    assert "password_file" in forwarder.stats().last_error
    assert not forwarder.join(0), "still running"
    secret.write_text("pw\n")
    assert wait_until(lambda: forwarder.stats().connected, 10)
    forwarder.stop()
    forwarder.join(10)


# -- a forwarder that never dies quietly (issue 12, finding 1) ----------------------------

FAST_RESTARTS = RestartPolicy(first_delay_s=0.05, max_delay_s=0.2, give_up_after=3)


def insert_raw_row(outbox_path: Path, *, flags: str = "", meta: str | None = None) -> None:
    """A row as another agent version (or a damaged disk) could have left it."""
    with sqlite3.connect(outbox_path) as conn:
        conn.execute(
            "INSERT INTO outbox (boot_id, seq, sensor, quantity, value, unit, utc_ms, "
            "monotonic_s, flags, meta) VALUES (?, ?, 'pm', 'pm2_5', 1.5, 'ug/m3', ?, 0, ?, ?)",
            ("e" * 32, 1, time.time_ns() // 1_000_000, flags, meta))


def test_a_row_with_a_flag_from_a_newer_version_is_delivered_without_it(
        tmp_path: Path, broker: Broker, recorder: Recorder) -> None:
    outbox = make_outbox(tmp_path)
    outbox.close()
    insert_raw_row(tmp_path / "outbox.sqlite", flags="warming_up,from_the_future")
    outbox = make_outbox(tmp_path)
    outbox.add(measurements(0, 5))
    outbox.commit()
    forwarder = start_forwarder(outbox, mqtt_config(broker), FAST_RESTARTS)
    try:
        assert wait_until(lambda: len(recorder.measurements()) == 6, 10)
        assert forwarder.stats().crashes == 0
        first = recorder.measurements()[0]
        assert first["flags"] == ["warming_up"]
    finally:
        forwarder.stop()
        forwarder.join(10)


def test_forwarder_that_cannot_be_kept_alive_gives_up_and_the_last_will_fires(
        tmp_path: Path, broker: Broker, recorder: Recorder) -> None:
    outbox = make_outbox(tmp_path)
    outbox.close()
    insert_raw_row(tmp_path / "outbox.sqlite", meta="{not json")  # a damaged row: crashes
    outbox = make_outbox(tmp_path)
    forwarder = start_forwarder(outbox, mqtt_config(broker), FAST_RESTARTS)
    assert forwarder.join(15) and forwarder.gave_up
    assert forwarder.stats().crashes == 3
    assert "crashed" in forwarder.stats().last_error
    assert forwarder.stats().connects == 3, "each restart connected again"
    # No DISCONNECT was sent, so the broker published the Last Will: the retained status
    # no longer claims ``online`` for a box that delivers nothing.
    assert wait_until(lambda: [m.payload for m in recorder.on("/box-1/status")][-1:]
                      == [b"offline"], 10)
    # A client id of its own: taking the fixture recorder's would end that session.
    late = Recorder(broker, client_id="test-late").start()
    try:
        assert wait_until(lambda: [m.payload for m in late.on("/box-1/status")] == [b"offline"],
                          10), "the retained status is offline"
    finally:
        late.stop()


# -- fleets, lying brokers and twins (issue 12, findings 4 and 5) ----------------------------


@pytest.mark.slow  # a fleet of forwarders and a broker restart (~6 s)
def test_a_fleet_dropped_by_a_broker_restart_comes_back_spread_out(
        tmp_path: Path, broker: Broker, recorder: Recorder) -> None:
    boxes = []
    for k in range(5):
        outbox = Outbox(tmp_path / f"box{k}.sqlite", f"{k}" * 32, max_rows=10**6,
                        max_age_days=1)
        forwarder = Forwarder(outbox, mqtt_config(broker, first_connect_jitter_s=3.0,
                                                  reconnect_min_s=0.5),
                              f"box-{k}", f"lokaalmeten-box-{k}", rng=random.Random(k))
        outbox.add(measurements(0, 10))
        outbox.commit()
        forwarder.start()
        boxes.append(forwarder)
    try:
        assert wait_until(lambda: all(f.stats().measurements_acked == 10 for f in boxes), 15)
        broker.stop()
        broker.start()
        back: dict[int, float] = {}
        deadline = time.monotonic() + 20
        while len(back) < len(boxes) and time.monotonic() < deadline:
            for k, forwarder in enumerate(boxes):
                if k not in back and forwarder.stats().connects >= 2:
                    back[k] = time.monotonic()
            time.sleep(0.01)
    finally:
        for forwarder in boxes:
            forwarder.stop()
            forwarder.join(10)
    assert len(back) == len(boxes), "every box came back"
    times = sorted(back.values())
    assert times[-1] - times[0] > 1.0, f"lockstep reconnect: {times}"


def test_two_boxes_with_one_client_id_are_told_apart(tmp_path: Path, broker: Broker) -> None:
    twins = [Forwarder(Outbox(tmp_path / f"twin{k}.sqlite", f"{k}" * 32, max_rows=100,
                              max_age_days=1), mqtt_config(broker), "box-1",
                       "lokaalmeten-box-1", rng=random.Random(k)) for k in range(2)]
    for twin in twins:
        twin.start()
    try:
        assert wait_until(lambda: sum(t.stats().takeovers for t in twins) >= 1, 10)
    finally:
        for twin in twins:
            twin.stop()
            twin.join(10)
    kicked = max(twins, key=lambda t: t.stats().takeovers)
    assert "taken over by another client with client id 'lokaalmeten-box-1'?" in \
        kicked.stats().last_error


class SilentBroker:
    """Accepts MQTT 3.1.1 connections and PUBLISHes, acknowledges the CONNECT only."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.connects = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.connects += 1
            threading.Thread(target=self._swallow, args=(conn,), daemon=True).start()

    @staticmethod
    def _swallow(conn: socket.socket) -> None:
        with conn:
            conn.recv(4096)  # CONNECT
            conn.sendall(b"\x20\x02\x00\x00")  # CONNACK, accepted
            while conn.recv(65536):
                pass

    def close(self) -> None:
        self._server.close()


@pytest.mark.slow  # a fault run: two real PUBACK timeouts
def test_a_broker_that_stops_acknowledging_is_left_and_nothing_is_lost(tmp_path: Path) -> None:
    silent = SilentBroker()
    outbox = make_outbox(tmp_path)
    outbox.add(measurements(0, 20))
    outbox.commit()
    config = MqttConfig.model_validate({
        "host": "127.0.0.1", "port": silent.port, "protocol": "3.1.1",
        "first_connect_jitter_s": 0, "reconnect_min_s": 0.2, "reconnect_max_s": 0.5,
        "puback_timeout_s": 1.0})
    forwarder = start_forwarder(outbox, config)
    try:
        assert wait_until(lambda: forwarder.stats().puback_timeouts >= 2, 15)
        assert silent.connects >= 2, "it reconnected after each timeout"
        assert "no PUBACK for 1 s" in forwarder.stats().last_error
    finally:
        forwarder.stop(drain_timeout_s=0.5)
        forwarder.join(10)
        silent.close()
    outbox.commit()
    assert outbox.stats().depth == 20, "unacknowledged rows stay queued"


@pytest.mark.parametrize(("protocol", "limit"), [("5", "max_packet_size 3000"),
                                                  ("3.1.1", "message_size_limit 3000")])
def test_a_backlog_fits_the_brokers_size_limit(tmp_path: Path, protocol: str,
                                               limit: str) -> None:
    """MQTT 5 brokers announce their limit; on 3.1.1 it must be configured, because
    Mosquitto acknowledges an oversized message there and then drops it."""
    broker = Broker(tmp_path)
    broker.config.write_text(broker.config.read_text() + limit + "\n")
    broker.start()
    recorder = Recorder(broker).start()
    try:
        outbox = make_outbox(tmp_path)
        outbox.add(measurements(0, 1290))
        outbox.commit()
        overrides = {} if protocol == "5" else {"max_message_bytes": 2900}
        forwarder = start_forwarder(outbox, mqtt_config(broker, protocol=protocol,
                                                        **overrides))
        assert wait_until(lambda: len(set(seqs(recorder))) == 1290, 20), \
            f"{len(set(seqs(recorder)))} of 1290 delivered"
        forwarder.stop()
        forwarder.join(10)
    finally:
        recorder.stop()
        broker.stop()
    sizes = [len(m.payload) for m in recorder.on("/measurements")]
    assert max(sizes) <= 3000 - len("lokaalmeten/box-1/measurements") - 32


def test_a_measurement_too_large_for_the_broker_is_set_aside_not_blocking(
        tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    broker.config.write_text(broker.config.read_text() + "max_packet_size 3000\n")
    broker.start()
    recorder = Recorder(broker).start()
    try:
        outbox = make_outbox(tmp_path)
        now = time.time_ns() // 1_000_000
        huge = Measurement("pm", "pm2_5", 1.0, "ug/m3", now, 0.0, meta=(("note", "x" * 4000),))
        outbox.add([*measurements(0, 10), huge, *measurements(10, 10)])
        outbox.commit()
        forwarder = start_forwarder(outbox, mqtt_config(broker))
        assert wait_until(lambda: len(set(seqs(recorder))) == 20, 15)
        forwarder.stop()
        forwarder.join(10)
        outbox.commit()
        stats = outbox.stats()
    finally:
        recorder.stop()
        broker.stop()
    assert sorted(set(seqs(recorder))) == [*range(1, 11), *range(12, 22)], "all but seq 11"
    assert stats.poison_total == 1 and stats.depth == 0
    with sqlite3.connect(tmp_path / "outbox.sqlite") as conn:
        (seq, reason), = conn.execute("SELECT seq, reason FROM poison").fetchall()
    assert seq == 11 and "over the" in reason, "kept, with the reason"


def test_a_size_limit_the_broker_does_not_announce_splits_batches_and_sets_aside_one(
        tmp_path: Path) -> None:
    """MQTT 5 against Mosquitto's ``message_size_limit``: not in the CONNACK, each message
    over it refused with 0x95. Batches are split until they fit; the one measurement that
    never fits is set aside after ``poison_after_rejections`` refusals, because the broker
    took other messages in between, and nothing behind it waits."""
    broker = Broker(tmp_path)
    broker.config.write_text(broker.config.read_text() + "message_size_limit 3000\n")
    broker.start()
    recorder = Recorder(broker).start()
    try:
        outbox = make_outbox(tmp_path)
        now = time.time_ns() // 1_000_000
        huge = Measurement("pm", "pm2_5", 1.0, "ug/m3", now, 0.0, meta=(("note", "x" * 4000),))
        outbox.add([*measurements(0, 600), huge, *measurements(600, 600)])
        outbox.commit()
        forwarder = start_forwarder(outbox, mqtt_config(broker, poison_after_rejections=3))
        assert wait_until(lambda: len(set(seqs(recorder))) == 1200, 30), \
            f"{len(set(seqs(recorder)))} of 1200 delivered"
        assert wait_until(lambda: outbox.stats().poison_total == 1, 10)
        forwarder.stop()
        forwarder.join(10)
        outbox.commit()
        stats, refused = outbox.stats(), forwarder.stats().rejected
    finally:
        recorder.stop()
        broker.stop()
    assert sorted(set(seqs(recorder))) == [*range(1, 601), *range(602, 1202)], "all but 601"
    assert stats.depth == 0
    assert refused >= 3
    with sqlite3.connect(tmp_path / "outbox.sqlite") as conn:
        (seq, reason), = conn.execute("SELECT seq, reason FROM poison").fetchall()
    assert seq == 601 and "refused 3 times" in reason and "0x95" in reason
