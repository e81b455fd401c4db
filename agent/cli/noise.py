"""``lokaalmeten noise FILE.wav``: offline sound levels of a recording, per interval.

The same meter as the daemon's microphone sensor (``agent.sound``), run over a
file: one line (or JSON object) per interval, the last one shorter when the
recording does not divide evenly. Nothing is written but the levels.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agent.cli._common import EXIT_FAILURE, EXIT_OK

if TYPE_CHECKING:
    from agent.sound import IntervalLevels

LEVELS = ("laeq", "lafmax", "lafmin", "la10", "la50", "la90", "lceq", "lzeq")
_HEADINGS = ("LAeq", "LAFmax", "LAFmin", "LA10", "LA50", "LA90", "LCeq", "LZeq")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    text = "Sound levels of a WAV recording, one line per interval."
    p = sub.add_parser("noise", help=text, description=text + " Levels are dB re 20 uPa "
                       "with the recording chain's calibration offset, else dB re full scale.")
    p.add_argument("wav", type=Path, metavar="FILE.wav", help="PCM or float WAV file")
    p.add_argument("--interval", type=float, default=1.0, metavar="S",
                   help="interval length in seconds (default 1)")
    p.add_argument("--offset", type=float, metavar="DB", help="calibration offset in dB (see "
                   "'lokaalmeten calibrate'); without it levels are relative to full scale")
    p.add_argument("--channel", type=int, default=0, help="channel to measure (default 0)")
    p.add_argument("--json", action="store_true", help="JSON lines output")
    p.set_defaults(func=cmd_noise)


def interval_record(levels: IntervalLevels) -> dict[str, float | int]:
    """One interval as a flat JSON object: time offset, levels (0.01 dB), clipped samples."""
    record: dict[str, float | int] = {"start_s": round(levels.start_s, 6),
                                      "duration_s": round(levels.duration_s, 6)}
    for name in LEVELS:
        value = getattr(levels, name)
        if value is not None and not math.isnan(value):
            record[name] = round(value, 2)
    record["clipped_samples"] = levels.clipped_samples
    return record


def cmd_noise(args: argparse.Namespace) -> int:
    from agent.sound.levels import energy_average  # noqa: PLC0415 - scipy only when used
    from agent.sound.wav import analyse_wav  # noqa: PLC0415

    if args.interval < 0.01:
        print("error: --interval must be at least 0.01 s", file=sys.stderr)
        return EXIT_FAILURE
    if args.offset is None:
        print("note: no --offset given; levels are dB re full scale (uncalibrated)",
              file=sys.stderr)
    records: list[dict[str, float | int]] = []
    try:
        for levels in analyse_wav(args.wav, args.interval, args.offset or 0.0,
                                  channel=args.channel):
            record = interval_record(levels)
            records.append(record)
            print(json.dumps(record) if args.json else _row(record, len(records) == 1),
                  flush=True)
    except (OSError, ValueError) as exc:
        print(f"error: {args.wav}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if not records:
        print(f"error: {args.wav}: no samples", file=sys.stderr)
        return EXIT_FAILURE
    if not args.json:
        total = energy_average([float(r["laeq"]) for r in records],
                               [float(r["duration_s"]) for r in records])
        seconds = sum(float(r["duration_s"]) for r in records)
        print(f"LAeq over {seconds:g} s: {total:.1f} dB")
    return EXIT_OK


def _row(record: dict[str, float | int], first: bool) -> str:
    cells = "".join(f"{record[n]:>8.1f}" if n in record else f"{'-':>8}" for n in LEVELS)
    line = f"{record['start_s']:>9.2f}{cells}"
    if record["clipped_samples"]:
        line += f"  clipped: {record['clipped_samples']}"
    if first:
        head = f"{'start s':>9}" + "".join(f"{h:>8}" for h in _HEADINGS)
        return head + "\n" + line
    return line
