"""Turning a scan into text: a table for people, a config snippet, and JSON for tools.

All pure: a :class:`~agent.scan.findings.ScanReport` and the profiles in, strings
and plain dicts out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from agent.config.profiles import Profile
from agent.config.sensors import SENSOR_ID
from agent.scan.findings import Finding, ScanReport, State

_ID_RULES = (
    ("co2", "co2"), ("pm2_5", "pm"), ("laeq", "noise"), ("sound_level", "noise"),
    ("relative_humidity", "climate"), ("pressure", "pressure"), ("wind_speed", "wind"),
)
"""The first rule whose quantity a profile has names its sensor id."""
_MAX_ID = 32
SLEEPING_HINT = ("nothing answered; a sensor the agent put to sleep (SDS011, PMS) stays "
                 "silent until woken or power-cycled: stop the agent and power-cycle it")


def sensor_id_base(profile: Profile) -> str:
    """A short id from what the sensor measures: pm, co2, climate, noise, ..."""
    names = {q.name for q in profile.quantities}
    for quantity, sensor_id in _ID_RULES:
        if quantity in names:
            return sensor_id
    return profile.model[:_MAX_ID]


def assign_ids(findings: tuple[Finding, ...],
               profiles: Mapping[str, Profile]) -> list[tuple[str, Finding]]:
    """Unique config ids: ``pm`` for the first PM sensor, ``pm-sps30`` for the next..."""
    used: set[str] = set()
    named = []
    for finding in findings:
        if finding.model is None:
            continue
        base = sensor_id_base(profiles[finding.model])
        candidate = base if base not in used else f"{base}-{finding.model}"[:_MAX_ID]
        number = 2
        while candidate in used or not SENSOR_ID.match(candidate):
            candidate = f"{base}-{number}"
            number += 1
        used.add(candidate)
        named.append((candidate, finding))
    return named


def render_snippet(report: ScanReport, profiles: Mapping[str, Profile], *,
                   heading: tuple[str, ...] = (
                       "# Found by `lokaalmeten scan`; paste into the agent config (e.g.",
                       "# /etc/lokaalmeten/agent.toml) and check with `lokaalmeten "
                       "check-config`.")) -> str:
    """``[sensors.<id>]`` tables for every recognised sensor, ready to paste.

    Only what differs from the profile is written (bus always, for clarity); what
    the scan learned goes into comments. Unknown devices are listed as comments.
    ``heading``: the comment lines on top (``init`` writes its own).
    """
    lines = list(heading)
    for sensor_id, finding in assign_ids(report.findings, profiles):
        profile = profiles[finding.model or ""]
        identity = finding.identity
        model_line = f"model = {_toml(profile.model)}"
        if identity.alternatives:
            model_line += f"  # or: {', '.join(identity.alternatives)}"
        lines += ["", f"[sensors.{sensor_id}]", model_line]
        if finding.kind == "i2c":
            lines.append(f"bus = {_toml(finding.bus)}")
            if finding.address != profile.address and finding.address is not None:
                lines.append(f"address = 0x{finding.address:02x}")
        else:
            lines.append(f"port = {_toml(finding.port)}")
            if finding.port_aliases:
                lines.append(f"# same port as {', '.join(finding.port_aliases)}")
            if finding.baudrate != profile.baudrate and finding.baudrate is not None:
                lines.append(f"baudrate = {finding.baudrate}")
        about = "; ".join(filter(None, [_facts(finding), *identity.notes]))
        if about:
            lines.append(f"# {about}")
    if not report.sensors:
        lines += ["", "# (no supported sensor found)"]
    unknown = [f for f in report.findings if f.model is None]
    if unknown:
        lines += ["", "# Not included (no supported model recognised):"]
        lines += [f"#   {f.where} {f.at}: {'; '.join(f.identity.notes) or 'unknown device'}"
                  for f in unknown]
    return "\n".join(lines) + "\n"


def render_table(report: ScanReport) -> str:
    """One row per device: where, address or rate, model, identity, notes."""
    header = ("BUS/PORT", "ADDR/BAUD", "MODEL", "SERIAL/FIRMWARE", "NOTES")
    rows = [header] + [(f.where, f.at, _model_text(f), _facts(f) or "-",
                        "; ".join(f.identity.notes)) for f in report.findings]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
             + "  " + row[-1] for row in rows]
    if not report.findings:
        lines.append("(no device answered)")
    for problem in report.problems:
        lines.append(f"not scanned: {problem.where}: {problem.message}")
    for port in report.silent_ports:
        lines.append(f"silent: {port}: {SLEEPING_HINT}")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def to_json(report: ScanReport, snippet: str) -> dict[str, object]:
    """The whole report as JSON-ready data (``--json``)."""
    return {
        "findings": [{
            "kind": f.kind, "bus": f.bus, "address": f.address, "port": f.port,
            "port_aliases": list(f.port_aliases), "baudrate": f.baudrate, "model": f.model,
            "alternatives": list(f.identity.alternatives), "state": str(f.identity.state),
            "identity": dict(f.identity.facts), "notes": list(f.identity.notes),
        } for f in report.findings],
        "problems": [{"where": p.where, "message": p.message} for p in report.problems],
        "silent_ports": list(report.silent_ports),
        "i2c_buses": list(report.i2c_buses),
        "ports": list(report.ports),
        "snippet": snippet,
    }


def _model_text(finding: Finding) -> str:
    identity = finding.identity
    if identity.model is None:
        return "unknown device"
    text = identity.model
    if identity.alternatives:
        text += f" (or {', '.join(identity.alternatives)})"
    if identity.state is State.MEASURING:
        text += " [measuring]"
    return text


def _facts(finding: Finding) -> str:
    return ", ".join(f"{key} {value}" for key, value in finding.identity.facts.items())


def _toml(value: object) -> str:
    """A TOML scalar: JSON's string escapes are valid in TOML basic strings."""
    return json.dumps(value) if isinstance(value, str) else str(value)
