"""``lokaalmeten init``: scan, answers, a config that check-config accepts and the agent runs."""

from __future__ import annotations

import io
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.cli import init, main
from agent.config import load_config
from agent.emulators import registry
from agent.emulators.serial_pty import PtySerialEmulator
from agent.health.system import cpu_serial
from agent.scan import ports
from tests.mqtt_broker import Broker, Recorder, wait_until

ROOT = Path(__file__).resolve().parents[2]
I2C_BOX = 'device_id = "bench"\n[sensors.climate]\nmodel = "bme280"\nbus = 1\n'


@pytest.fixture
def no_host_ports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the host's own /dev/serial/by-id and /dev/serial0 out of hardware scans."""
    monkeypatch.setattr(ports, "BY_ID_DIR", tmp_path / "no-by-id")
    monkeypatch.setattr(ports, "PI_UART_ALIASES", ())


@pytest.fixture
def i2c_box(tmp_path: Path) -> Path:
    box = tmp_path / "box.toml"
    box.write_text(I2C_BOX)
    return box


def agent_process(command: str, config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "agent", command, "--config",
                                 str(config)], stdout=out, stderr=out,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(20)


# -- the device id -------------------------------------------------------------------------

def test_device_id_is_the_pi_serial_then_the_host_name(tmp_path: Path) -> None:
    cpuinfo, serial = tmp_path / "cpuinfo", tmp_path / "serial-number"
    cpuinfo.write_text("processor\t: 0\nHardware\t: BCM2835\nSerial\t\t: 10000000A1B2C3D4\n")
    pi = cpu_serial(cpuinfo, serial)
    assert init.default_device_id(pi, "raspberrypi") == "10000000a1b2c3d4"
    cpuinfo.write_text("processor\t: 0\nSerial\t\t: 0000000000000000\n")  # not a Pi
    serial.write_bytes(b"e4a1b2c3d4e5f6a7\x00")  # Pi 5: the device tree has it
    assert init.default_device_id(cpu_serial(cpuinfo, serial), "rpi") == "e4a1b2c3d4e5f6a7"
    serial.unlink()
    assert init.default_device_id(cpu_serial(cpuinfo, serial), "raspberrypi") == "raspberrypi"
    assert init.default_device_id(None, "_Box 7 (attic)!") == "Box-7-attic-"
    assert init.device_id_from("x" * 80) == "x" * 64
    assert init.device_id_from("...") == "box"


# -- non-interactive: flags and --yes ------------------------------------------------------

@pytest.mark.slow  # runs the daemon in simulated mode (~18 s)
def test_simulated_box_gives_a_config_check_config_and_simulate_accept(
        tmp_path: Path, broker: Broker, recorder: Recorder,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "etc" / "agent.toml"
    assert main(["init", "--config", str(config), "--simulate", "--yes", "--device-id",
                 "sim-init", "--broker", f"{broker.host}:{broker.port}",
                 "--state-dir", str(tmp_path / "state")]) == 0
    out = capsys.readouterr()
    assert "13 sensor(s)" in out.out and "sds011" in out.err  # the scan's table
    assert (config.stat().st_mode & 0o777) == 0o640
    assert main(["check-config", "--config", str(config)]) == 0
    written = load_config(config)
    assert written.device_id == "sim-init" and written.mqtt.tls is None
    assert written.storage.path == tmp_path / "state" / "outbox.sqlite"
    assert {s.model for s in written.sensors.values()} >= {"sds011", "pms5003", "sps30",
                                                          "sen55", "bme280", "scd41"}
    process = agent_process("simulate", config, tmp_path / "agent.log")
    try:
        assert wait_until(lambda: {"pm", "climate"} <= {
            m["sensor"] for m in recorder.measurements()
            if m["device_id"] == "sim-init" and m["sensor"] != "agent"}, 60), \
            (tmp_path / "agent.log").read_text()
    finally:
        assert stop(process) == 0


@pytest.mark.slow  # the first heartbeat comes after 10 s (and a connect jitter of up to 10 s)
def test_run_starts_with_what_init_found_on_a_serial_port(
        tmp_path: Path, broker: Broker, recorder: Recorder, no_host_ports: None) -> None:
    """The hardware path: pyserial scans a pty with an SDS011 behind it, ``run`` opens it."""
    with PtySerialEmulator(registry()["sds011"].factory(), tmp_path, "ttySDS") as sds011:
        config = tmp_path / "agent.toml"
        assert main(["init", "--config", str(config), "--yes", "--port", sds011.port,
                     "--bus", str(tmp_path / "i2c-9"), "--device-id", "pty-box",
                     "--broker", f"{broker.host}:{broker.port}",
                     "--state-dir", str(tmp_path / "state")]) == 0
        sensors = load_config(config).sensors
        assert [(s.model, s.port) for s in sensors.values()] == [("sds011", sds011.port)]
        process = agent_process("run", config, tmp_path / "agent.log")
        try:
            assert wait_until(lambda: [m["value"] for m in recorder.measurements()
                                       if (m["sensor"], m["quantity"]) == ("pm", "up")], 40)
            health = {m["quantity"]: m["value"] for m in recorder.measurements()
                      if m["sensor"] == "pm"}
            assert health["up"] == 1 and health["consecutive_failures"] == 0, health
        finally:
            assert stop(process) == 0
        assert sds011.bytes_received > 0, "the agent talked to the sensor"


def test_an_existing_config_is_kept_unless_forced(tmp_path: Path, i2c_box: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("# mine\n")
    command = ["init", "--config", str(config), "--simulate", str(i2c_box), "--yes"]
    assert main(command) == 2
    assert "exists already" in capsys.readouterr().err
    assert config.read_text() == "# mine\n"
    assert main([*command, "--force"]) == 0
    assert load_config(config).sensors["climate"].model == "bme280"


def test_without_a_terminal_it_wants_yes(tmp_path: Path, i2c_box: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "agent.toml"
    assert main(["init", "--config", str(config), "--simulate", str(i2c_box)]) == 2
    assert "--yes" in capsys.readouterr().err and not config.exists()


def test_password_goes_to_its_own_private_file(tmp_path: Path, i2c_box: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret pass\n"))
    config = tmp_path / "agent.toml"
    assert main(["init", "--config", str(config), "--simulate", str(i2c_box), "--yes",
                 "--broker", "mqtt.example.nl", "--tls", "--ca-file", str(ca),
                 "--username", "box-7", "--password-stdin"]) == 0
    secret = tmp_path / "mqtt-password"
    assert secret.read_text() == "s3cret pass\n" and (secret.stat().st_mode & 0o777) == 0o600
    assert "s3cret" not in config.read_text()
    mqtt = load_config(config).mqtt
    assert (mqtt.host, mqtt.port, mqtt.username) == ("mqtt.example.nl", 8883, "box-7")
    assert mqtt.password_file == secret and mqtt.password() == "s3cret pass"
    assert mqtt.tls is not None and mqtt.tls.ca_file == ca


def test_a_config_check_config_would_refuse_is_not_written(
        tmp_path: Path, i2c_box: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret\n"))
    config = tmp_path / "agent.toml"
    assert main(["init", "--config", str(config), "--simulate", str(i2c_box), "--yes",
                 "--broker", "mqtt.example.nl:1883", "--username", "box-7",
                 "--password-stdin"]) == 2
    err = capsys.readouterr().err
    assert f"{config}: mqtt: username/password would be sent in clear text" in err
    assert not config.exists() and not (tmp_path / "mqtt-password").exists()


# -- interactive: a terminal -----------------------------------------------------------------

def test_on_a_terminal_it_asks(tmp_path: Path, i2c_box: Path) -> None:
    config = tmp_path / "agent.toml"
    pid, terminal = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        os.environ["PYTHONPATH"] = str(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "agent", "init", "--config",
                                  str(config), "--simulate", str(i2c_box)])
    answers = [("Device id [", "bad id!\n"), ("Device id [bad-id-]", "balcony-3\n"),
               ("MQTT broker", "192.0.2.10:1884\n"), ("TLS to the broker? [y/N]", "\n"),
               ("MQTT user name", "balcony\n"), ("clear text", "y\n"),
               ("MQTT password", "typed secret\n")]
    screen = ""
    for prompt, answer in answers:
        screen = read_until(terminal, prompt, screen)
        os.write(terminal, answer.encode())
    screen = read_until(terminal, "next: lokaalmeten check-config", screen)
    _, status = os.waitpid(pid, 0)
    os.close(terminal)
    assert os.waitstatus_to_exitcode(status) == 0, screen
    assert "typed secret" not in screen, "the password is not echoed"
    mqtt = load_config(config).mqtt
    assert (mqtt.host, mqtt.port, mqtt.username, mqtt.tls) == ("192.0.2.10", 1884, "balcony",
                                                               None)
    assert mqtt.allow_plaintext_credentials and mqtt.password() == "typed secret"
    assert load_config(config).device_id == "balcony-3"


def read_until(terminal: int, text: str, screen: str, timeout_s: float = 30) -> str:
    """Read the terminal until ``text`` appears after what was already seen."""
    start, deadline = len(screen), time.monotonic() + timeout_s
    while text not in screen[start:]:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} on the terminal:\n{screen}")
        try:
            screen += re.sub(r"\r", "", os.read(terminal, 4096).decode(errors="replace"))
        except OSError:  # the child closed the terminal
            raise AssertionError(f"no {text!r} on the terminal:\n{screen}") from None
    return screen
