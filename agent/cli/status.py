"""``lokaalmeten status``: the status page's facts on one terminal screen.

It asks the running daemon (``/api/status`` of its local page) rather than opening the
outbox or the buses itself, so it shows exactly what the page shows and works while
the agent runs. Exit codes, for scripts and monitoring: 0 all well, 1 something on the
box is wrong (a sensor or camera down, the broker away longer than
``broker_down_after_s``, the outbox dropping data, the disk full), 2 bad configuration
or usage, 3 the daemon could not be asked (not running, page disabled, token refused).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.cli._common import EXIT_FAILURE, EXIT_OK
from agent.config import DEFAULT_CONFIG_PATH
from agent.config.errors import problems_from
from agent.config.status import StatusConfig
from agent.errors import ConfigError

EXIT_UNREACHABLE = 3
TIMEOUT_S = 5.0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    text = "Show the running agent's state on one screen (exit 1 when something is wrong)."
    p = sub.add_parser("status", help=text, description=text + " Exit codes: 0 all well, "
                       "1 a problem on the box, 2 bad configuration, 3 the agent could not "
                       "be asked (not running, [status] disabled, token refused).")
    p.add_argument("--config", type=Path, default=None,
                   help=f"configuration file, for the page's address and token "
                   f"(default {DEFAULT_CONFIG_PATH}; only its [status] table is read)")
    p.add_argument("--url", help="the page's address instead, e.g. http://127.0.0.1:8470")
    p.add_argument("--json", action="store_true", help="print the agent's JSON as it is")
    p.set_defaults(func=cmd_status)


def status_settings(path: Path | None) -> StatusConfig:
    """The ``[status]`` table alone: the rest of the file (and its secrets) is not needed,
    and may not be readable by the person asking."""
    source = path or DEFAULT_CONFIG_PATH
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if path is None:
            return StatusConfig()  # no config on this machine: the defaults apply
        raise ConfigError(str(source), [("", "no such file")]) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise ConfigError(str(source), [("", f"cannot read: {reason} (try sudo, or --url "
                                         "with the page's address)")]) from exc
    try:
        return StatusConfig.model_validate(data.get("status", {}))
    except ValidationError as exc:
        raise ConfigError(str(source), problems_from(exc, "status")) from exc


def fetch(url: str, token: str | None, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """GET ``/api/status``; raises ``urllib.error.URLError`` (or ``HTTPError``)."""
    request = urllib.request.Request(url.rstrip("/") + "/api/status")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    with opener.open(request, timeout=timeout_s) as response:
        document: dict[str, Any] = json.loads(response.read())
    return document


def cmd_status(args: argparse.Namespace) -> int:
    settings = status_settings(args.config)
    if args.url is None and not settings.enabled:
        print(f"The status page is disabled ([status] enabled = false in "
              f"{args.config or DEFAULT_CONFIG_PATH}); `lokaalmeten status` reads it. Enable "
              "it (it listens on 127.0.0.1 only) and restart the agent.", file=sys.stderr)
        return EXIT_UNREACHABLE
    url = args.url or settings.local_url()
    try:
        document = fetch(url, settings.token())
    except urllib.error.HTTPError as exc:
        reason = "the token was refused (check [status] token_file)" if exc.code == 401 \
            else f"HTTP {exc.code} {exc.reason}"
        print(f"The agent's page at {url} answered: {reason}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (urllib.error.URLError, OSError, ValueError) as exc:
        why = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        print(f"The agent is not running, or not with its status page at {url} ({why}).\n"
              "Check: systemctl status lokaalmeten-agent", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json:
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        print(render(document, shutil.get_terminal_size((100, 24)).columns))
    return EXIT_OK if document.get("ok") else EXIT_FAILURE


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _span(seconds: float) -> str:
    return _age(seconds).removesuffix(" ago")


def _num(value: float) -> str:
    if value.is_integer():
        return f"{value:.0f}"
    magnitude = abs(value)
    return f"{value:.0f}" if magnitude >= 100 else f"{value:.1f}" if magnitude >= 10 \
        else f"{value:.2f}"


def _values(values: list[dict[str, Any]]) -> str:
    return ", ".join(f"{v['label']} {_num(v['value'])}"
                     + (f" {v['display_unit']}" if v["display_unit"] else "")
                     for v in values)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(0, width - 1)] + "…"


def render(doc: dict[str, Any], width: int = 100) -> str:
    """One screen: verdict, broker, outbox, host, problems, one line per sensor/camera."""
    broker, outbox, system = doc["broker"], doc["outbox"], doc["system"]
    errors = [p for p in doc["problems"] if p["severity"] == "error"]
    verdict = "ALL WELL" if doc["ok"] else f"{len(errors)} PROBLEM{'S' * (len(errors) != 1)}"
    connection = "connected" if broker["connected"] else \
        f"NOT connected for {_span(broker['down_s'] or 0)}"
    host = [f"disk {system['disk_free_mb'] / 1000:.1f} GB free"
            if system["disk_free_mb"] is not None else None,
            f"CPU {system['cpu_temperature_c']:.1f} °C"
            if system["cpu_temperature_c"] is not None else None,
            f"load {system['load_1m']:.2f}",
            f"agent {system['rss_mb']:.0f} MB" if system["rss_mb"] is not None else None,
            {True: "clock synced", False: "clock NOT synced", None: None}[system["clock_synced"]]]
    lines = [f"{doc['device_id']}: {verdict}   (agent {doc['version']}, up "
             f"{_span(doc['uptime_s'])})",
             f"broker   {broker['host']}:{broker['port']} {connection}; "
             f"{broker['measurements_sent_total']} measurements sent since start",
             f"outbox   {outbox['depth']} waiting; dropped {outbox['dropped_last_hour']} in the "
             f"last hour, {outbox['dropped_total']} ever",
             f"box      {', '.join(h for h in host if h)}"]
    for problem in doc["problems"]:
        lines.append(f"{'ERROR' if problem['severity'] == 'error' else 'warning':8} "
                     f"{problem['subject']}: {problem['text']}")
    lines.append("")
    lines.append(f"{'sensor':14}{'state':12}{'last read':12}{'errors':>7}  latest")
    for sensor in doc["sensors"]:
        state = "stalled" if sensor["stalled"] else sensor["state"]
        lines.append(f"{sensor['id']:14}{state:12}{_age(sensor['last_seen_age_s']):12}"
                     f"{sensor['errors_total']:>7}  {_values(sensor['values'])}")
    for camera in doc["cameras"]:
        state = "counting" if camera["up"] and camera["source_up"] else \
            "no frames" if camera["up"] else "down"
        seen = None if camera["last_seen_ms"] is None else \
            (doc["now_ms"] - camera["last_seen_ms"]) / 1000
        lines.append(f"{camera['id']:14}{state:12}{_age(seen):12}"
                     f"{camera['restarts_total']:>7}  {_values(camera['values'])}")
    return "\n".join(_fit(line, width) for line in lines)

