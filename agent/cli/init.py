"""``lokaalmeten init``: a first configuration for this box, from a scan and a few answers.

It scans like ``lokaalmeten scan`` (read-only; stop the agent first), asks for the
device id (default: the Raspberry Pi's serial number, else the host name) and the
broker, and writes a config that ``check-config`` accepts: the text is validated by
the same code before it is written, an existing file is kept unless ``--force``, and
an MQTT password goes into a file of its own (mode 600, owned by the agent's user),
never into the TOML.

Every question has a flag, so a fleet can run it from a script (``--yes`` takes the
defaults for whatever no flag answers); on a terminal it asks.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import pwd
import re
import socket
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from agent.cli._common import DEFAULT_SIMULATED_CONFIG, EXIT_OK, setup_logging
from agent.cli.scan import scan_box
from agent.config import DEFAULT_CONFIG_PATH, load_config, parse_config
from agent.config.profiles import all_profiles
from agent.config.storage import StorageConfig
from agent.errors import ConfigError
from agent.health.system import cpu_serial
from agent.plan import plan
from agent.scan.report import render_snippet, render_table

SERVICE_USER = "lokaalmeten"
"""Owns the password file when ``init`` runs as root (the agent must read it)."""
DEFAULT_STATE_DIR = StorageConfig.model_fields["path"].default.parent
TLS_PORT, PLAIN_PORT = 8883, 1883


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    text = "Write a first configuration: find the sensors, ask for device id and broker."
    p = sub.add_parser("init", help=text, description=text + " On a terminal it asks; "
                       "otherwise answer with the flags and --yes (defaults for the rest). "
                       "Stop the agent first: the scan needs its ports.")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH,
                   help=f"the file to write (default {DEFAULT_CONFIG_PATH})")
    p.add_argument("--force", action="store_true", help="overwrite an existing config "
                   "(and password file)")
    p.add_argument("--yes", action="store_true", help="ask nothing: take the defaults for "
                   "what no flag answers (needed when stdin is not a terminal)")
    p.add_argument("--device-id", help="the box's name in topics and messages (default: the "
                   "Raspberry Pi's serial number, else the host name)")
    p.add_argument("--broker", metavar="HOST[:PORT]", help="MQTT broker (default localhost; "
                   f"port {TLS_PORT} with TLS, else {PLAIN_PORT})")
    p.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None,
                   help=f"TLS to the broker (default: on for port {TLS_PORT})")
    p.add_argument("--ca-file", type=Path, help="CA that signed the broker's certificate "
                   "(default: the system trust store)")
    p.add_argument("--cert-file", type=Path, help="client certificate (with --key-file)")
    p.add_argument("--key-file", type=Path, help="client private key")
    p.add_argument("--username", help="MQTT user name (default: none)")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the MQTT password from the first line of stdin")
    p.add_argument("--password-file", type=Path, help="the password's file, written when "
                   "a password is given, else used as it is (default: mqtt-password beside "
                   "the config)")
    p.add_argument("--allow-plaintext-credentials", action="store_true",
                   help="accept a user name and password without TLS (trusted network only)")
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                   help=f"where the outbox is kept (default {DEFAULT_STATE_DIR})")
    p.add_argument("--bus", action="append", default=[], metavar="N",
                   help="I2C bus number or /dev/i2c-N to scan (repeatable; default 1)")
    p.add_argument("--port", action="append", default=[], metavar="P", help="serial port "
                   "to scan as well (repeatable); /dev/serial/by-id/* and /dev/serial0 "
                   "are always scanned")
    p.add_argument("--simulate", nargs="?", type=Path, const=DEFAULT_SIMULATED_CONFIG,
                   metavar="BOX", help="scan the emulated sensors of a simulated box "
                   "(default: the bundled one) instead of hardware")
    p.set_defaults(func=cmd_init)


@dataclass(frozen=True)
class Broker:
    """The answers that make the ``[mqtt]`` table (``password_file`` set when one exists)."""

    host: str
    port: int
    tls: bool
    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None
    username: str | None
    password_file: Path | None
    allow_plaintext: bool


def cmd_init(args: argparse.Namespace) -> int:
    setup_logging("WARNING")
    target: Path = args.config
    password_file = args.password_file or target.parent / "mqtt-password"
    ask = Questions(interactive=sys.stdin.isatty() and not args.yes)
    if not ask.interactive and not args.yes:
        raise ConfigError(str(target), [("", "stdin is not a terminal: answer with the "
                                         "flags and add --yes (see lokaalmeten init --help)")])
    refuse_overwrite(target, args.force)
    box = load_config(args.simulate) if args.simulate else None
    report = scan_box(box, args.bus, args.port, simulate=box is not None)
    print(render_table(report), end="", file=sys.stderr)
    device_id = ask.text("Device id", args.device_id,
                         default_device_id(cpu_serial(), socket.gethostname()))
    while device_id_from(device_id) != device_id:
        print("a device id is 1-64 letters, digits, '.', '_' or '-', starting with a "
              "letter or digit", file=sys.stderr)
        device_id = ask.text("Device id", None, device_id_from(device_id))
    broker = ask_broker(args, ask)
    password = read_password(args, ask) if broker.username else None
    if password is not None:
        refuse_overwrite(password_file, args.force)
    if password is not None or (broker.username and password_file.exists()):
        broker = replace(broker, password_file=password_file)
    snippet = render_snippet(report, all_profiles(), heading=(
        f"# Sensors found by `lokaalmeten init` ({len(report.sensors)}).",))
    text = render_config(device_id, broker, args.state_dir, snippet)
    created = password is not None and write_private(password_file, password + "\n", 0o600,
                                                     owner=SERVICE_USER)
    try:
        plan(parse_config(text, str(target)), str(target))  # what check-config runs
    except ConfigError:
        if created:
            password_file.unlink()
        raise
    write_private(target, text, 0o640)
    print(f"wrote {target}: device {device_id}, broker {broker.host}:{broker.port}"
          f"{' (TLS)' if broker.tls else ''}, {len(report.sensors)} sensor(s)"
          + (f"; password in {password_file}" if created else ""))
    if not report.sensors:
        print("warning: no sensor found; add [sensors.<id>] tables by hand "
              "(docs/configuration.md) or wire them and run init --force again",
              file=sys.stderr)
    print(f"next: lokaalmeten check-config --config {target}")
    if target == DEFAULT_CONFIG_PATH:
        print("      sudo systemctl restart lokaalmeten-agent")
    return EXIT_OK


class Questions:
    """Prompts on a terminal; without one every question takes its given default."""

    def __init__(self, *, interactive: bool) -> None:
        self.interactive = interactive

    def text(self, question: str, given: str | None, default: str) -> str:
        if given is not None or not self.interactive:
            return default if given is None else given
        answer = input(f"{question} [{default}]: " if default else f"{question}: ").strip()
        return answer or default

    def yes(self, question: str, default: bool) -> bool:
        if not self.interactive:
            return default
        answer = input(f"{question} [{'Y/n' if default else 'y/N'}]: ").strip().lower()
        return default if not answer else answer.startswith("y")

    def path(self, question: str, given: Path | None) -> Path | None:
        if given is not None or not self.interactive:
            return given
        answer = input(f"{question} (empty: none): ").strip()
        return Path(answer) if answer else None


def ask_broker(args: argparse.Namespace, ask: Questions) -> Broker:
    """Host, port, TLS and user name: flags first, then questions, then defaults."""
    host, _, port_text = ask.text("MQTT broker (host or host:port)", args.broker,
                                  "localhost").rpartition(":")
    if not host or not port_text.isdigit():  # no port given (or an IPv6 address)
        host, port_text = f"{host}:{port_text}" if host else port_text, ""
    port = int(port_text) if port_text else None
    tls = args.tls if args.tls is not None else ask.yes("TLS to the broker?", port == TLS_PORT)
    port = port or (TLS_PORT if tls else PLAIN_PORT)
    ca_file = cert_file = key_file = None
    if tls:
        ca_file = ask.path("CA file of the broker (for a private CA)", args.ca_file)
        cert_file = ask.path("Client certificate", args.cert_file)
        key_file = ask.path("Client key", args.key_file) if cert_file else args.key_file
    username = ask.text("MQTT user name (empty: none)", args.username, "") or None
    plaintext = args.allow_plaintext_credentials
    if username and not tls and not plaintext:
        plaintext = ask.yes("No TLS: send the user name and password in clear text "
                            "(only for a broker on a trusted network)?", False)
    return Broker(host, port, tls, ca_file, cert_file, key_file, username, None, plaintext)


def read_password(args: argparse.Namespace, ask: Questions) -> str | None:
    """From stdin (``--password-stdin``) or asked without echo; None keeps the file as it is."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n") or None
    if ask.interactive:
        return getpass.getpass("MQTT password (empty: none, or keep the password file): ") \
            or None
    return None


def render_config(device_id: str, broker: Broker, state_dir: Path, sensors: str) -> str:
    """The config file's text: only what differs from the defaults, sensors from the scan."""
    lines = ["# Written by `lokaalmeten init`. Every key: docs/configuration.md; check it with",
             "# `lokaalmeten check-config`, apply a change with `systemctl reload "
             "lokaalmeten-agent`.",
             f"device_id = {_toml(device_id)}", "", "[mqtt]", f"host = {_toml(broker.host)}",
             f"port = {broker.port}"]
    if broker.username:
        lines.append(f"username = {_toml(broker.username)}")
    if broker.password_file:
        lines.append(f"password_file = {_toml(str(broker.password_file))}")
    if broker.allow_plaintext and not broker.tls:
        lines.append("allow_plaintext_credentials = true")
    if broker.tls:
        lines.append("[mqtt.tls]" + ("" if broker.ca_file else "    # the system trust store"))
        lines += [f"{key} = {_toml(str(value))}" for key, value in (
            ("ca_file", broker.ca_file), ("cert_file", broker.cert_file),
            ("key_file", broker.key_file)) if value is not None]
    if state_dir != DEFAULT_STATE_DIR:
        lines += ["", "[storage]", f"path = {_toml(str(state_dir / 'outbox.sqlite'))}"]
    return "\n".join(lines) + "\n\n" + sensors


def default_device_id(serial: str | None, hostname: str) -> str:
    """The Raspberry Pi's serial number (unique, printed nowhere else), else the host name
    (often the "raspberrypi" of every Pi: hence second), as a valid device id."""
    return device_id_from(serial or hostname)


def device_id_from(text: str) -> str:
    """Letters, digits, '.', '_', '-' only, starting with a letter or digit, at most 64."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text.strip()).lstrip("._-")[:64]
    return cleaned or "box"


def refuse_overwrite(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise ConfigError(str(path), [("", "exists already; keep it, or overwrite it with "
                                       "--force")])


def write_private(path: Path, text: str, mode: int, owner: str | None = None) -> bool:
    """Write atomically with ``mode`` from the first byte; as root, hand it to ``owner``."""
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, mode)
        if owner is not None and os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(owner)
                os.fchown(handle, entry.pw_uid, entry.pw_gid)
            except KeyError:  # not installed yet: root keeps it; scripts/install fixes it
                pass
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


def _toml(value: str) -> str:
    """A TOML basic string: JSON's escapes are valid there."""
    return json.dumps(value)
