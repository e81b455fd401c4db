"""``lokaalmeten count``: run the person-counting pipeline offline on a video file or stream.

The same pipeline as the daemon's counter process (detector, tracker, lines,
zones, intervals, motion gating), but every frame is processed in order, none
is dropped, nothing waits for real time, and interval times are video time
(frame index / fps). Results go to stdout (text, or JSON lines with the same
quantity names as the MQTT payload, closed by a ``{"summary": ...}`` line of
whole-video totals); a progress bar, the totals in text mode and the speed go
to stderr. Only numbers are written: ``--per-frame`` writes ``frame,count``, the
count left blank under ``suppress_below`` like every other figure. In text output a
withheld figure is ``-``, and a note on stderr says so (a user took it for zero).

Whole-video totals are folded by a second ``IntervalCounter`` whose one
interval spans the video, so they pass the same small-count suppression as
every interval. OpenCV's and FFmpeg's own messages are switched off: a video
that cannot be opened gets one clear line (exit 1), never their warnings.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import ValidationError

from agent.cli._common import EXIT_OK, setup_logging
from agent.config import load_config
from agent.config.camera import CameraConfig
from agent.config.errors import problems_from
from agent.errors import AgentError, ConfigError
from agent.vision.pace import KeepRate

if TYPE_CHECKING:  # the vision stack loads in cmd_count only
    from agent.vision.intervals import IntervalRecord
    from agent.vision.pipeline import IntervalReport
    from agent.vision.source import VideoInfo

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(ms|s|m|min|h)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, None: 1.0}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    text = "Count people in a video file offline (every frame; video time)."
    p = sub.add_parser("count", help=text, description=text + " Coordinates are pixels of "
                       "the video, x right, y down.")
    p.add_argument("video", metavar="VIDEO", help="video file (or an http:// MJPEG or "
                   "rtsp:// stream, counted until it ends or Ctrl-C)")
    p.add_argument("--line", action="append", default=[], metavar="[NAME=]X1,Y1,X2,Y2",
                   help="counting line; crossing it from its left to its right (seen "
                        "walking from 1 to 2) is 'in'. Repeatable.")
    p.add_argument("--zone", action="append", default=[], metavar="[NAME=]X,Y,X,Y,X,Y...[@M2]",
                   help="occupancy zone polygon, optionally with its ground area in m² "
                        "for density. Repeatable.")
    p.add_argument("--interval", type=duration, default=None, metavar="DURATION",
                   help="report period in video time, e.g. 10s, 1m (default 60s)")
    p.add_argument("--json", action="store_true", help="JSON lines output")
    p.add_argument("--per-frame", type=Path, metavar="FILE.csv",
                   help="also write frame,count (people detected in each analysed frame; "
                        "blank below --suppress-below) to this file")
    p.add_argument("--model", type=Path, help="ONNX detector (default: the bundled one)")
    p.add_argument("--input-size", type=input_size, metavar="N|WxH",
                   help="model input size (models with a dynamic input only)")
    p.add_argument("--config", type=Path, help="take the camera settings (lines, zones, "
                   "model, thresholds, ignore regions) from this agent config ...")
    p.add_argument("--camera", metavar="ID", help="... from this camera section")
    p.add_argument("--fps", type=float, help="frame rate of the video's time axis "
                   "(default: what the video says; streams often say 25 whatever they send)")
    p.add_argument("--suppress-below", type=int, metavar="N",
                   help="withhold figures below N people (default: the camera's setting, "
                        "3); 0 shows every figure, for evaluating the counter only")
    p.add_argument("--analysis-fps", type=float, metavar="RATE",
                   help="analyse at most RATE frames per second of video and skip the rest, as "
                        "a slower box does (a Raspberry Pi 4 manages about 3 with the bundled "
                        "model): see how it would count")
    p.add_argument("--no-motion-gate", action="store_true",
                   help="analyse every frame even when nothing moves")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   default="WARNING", help="log messages on stderr from this level on")
    p.set_defaults(func=cmd_count)


def duration(text: str) -> float:
    """'10s', '1.5m', '2h', '500ms' or plain seconds → seconds."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 10s, 1m)")
    return float(match.group(1)) * _SECONDS[match.group(2)]


def input_size(text: str) -> int | tuple[int, int]:
    """'416' or '640x480' (width x height)."""
    parts = text.lower().split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 416 or 640x480)") from None
    if len(sizes) == 1:
        return sizes[0]
    if len(sizes) == 2:
        return sizes[0], sizes[1]
    raise argparse.ArgumentTypeError(f"not a size: {text!r}")


def parse_line(text: str, default_name: str) -> dict[str, Any]:
    name, numbers = _named(text, default_name)
    if len(numbers) != 4:
        raise ValueError(f"--line {text!r}: need x1,y1,x2,y2")
    return dict(zip(("name", "x1", "y1", "x2", "y2"), (name, *numbers), strict=True))


def parse_zone(text: str, default_name: str) -> dict[str, Any]:
    body, _, area = text.partition("@")
    name, numbers = _named(body, default_name)
    if len(numbers) < 6 or len(numbers) % 2:
        raise ValueError(f"--zone {text!r}: need at least three x,y points")
    zone: dict[str, Any] = {"name": name, "polygon": list(zip(numbers[::2], numbers[1::2],
                                                              strict=True))}
    if area:
        zone["area_m2"] = float(area)
    return zone


def _named(text: str, default_name: str) -> tuple[str, list[float]]:
    name, sep, rest = text.partition("=")
    if not sep:
        name, rest = default_name, text
    try:
        return name.strip(), [float(v) for v in rest.split(",")]
    except ValueError:
        raise ValueError(f"{text!r}: coordinates must be numbers") from None


def camera_settings(args: argparse.Namespace) -> CameraConfig:
    """The camera section to run: from --config/--camera if given, then the options on top."""
    source = str(args.config or "command line")
    base: dict[str, Any] = {}
    if args.camera or args.config:
        if not (args.camera and args.config):
            raise ConfigError(source, [("--camera", "--config and --camera go together")])
        cameras = load_config(args.config).cameras
        if args.camera not in cameras:
            raise ConfigError(source, [("cameras", f"no camera {args.camera!r} (configured: "
                                        f"{', '.join(cameras) or 'none'})")])
        base = cameras[args.camera].model_dump(exclude_unset=True)
    try:
        if args.line:
            base["lines"] = [parse_line(x, f"line{i + 1}") for i, x in enumerate(args.line)]
        if args.zone:
            base["zones"] = [parse_zone(x, f"zone{i + 1}") for i, x in enumerate(args.zone)]
    except ValueError as exc:
        raise ConfigError(source, [("", str(exc))]) from None
    base["source"] = str(args.video)
    overrides = {"interval_s": args.interval, "model": args.model, "input_size": args.input_size,
                 "suppress_below": args.suppress_below}
    base.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return CameraConfig.model_validate(base)
    except ValidationError as exc:
        raise ConfigError(source, problems_from(exc)) from exc


def outside_frame(config: CameraConfig, width: int, height: int) -> list[tuple[str, str]]:
    """(key, reason) for each line or zone with a point outside a ``width`` x ``height`` frame.

    The frame's edges count as inside (a line from x 0 to x 768 spans a 768 px
    wide frame). A line only partly outside is refused too: points beyond the
    frame almost always mean coordinates taken at another resolution, and the
    counts would silently cover less than the operator drew.
    """
    where = f"outside the {width}x{height} video frame (x 0-{width}, y 0-{height})"
    shapes = [(f"line {x.name!r}", "end point", [(x.x1, x.y1), (x.x2, x.y2)])
              for x in config.lines]
    shapes += [(f"zone {z.name!r}", "vertex", list(z.polygon)) for z in config.zones]
    problems = []
    for key, kind, points in shapes:
        out = [(x, y) for x, y in points if not (0 <= x <= width and 0 <= y <= height)]
        if out:
            listed = ", ".join(f"({x:g}, {y:g})" for x, y in out)
            problems.append((key, f"{kind} {listed} {where}"))
    return problems


def cmd_count(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    try:
        rate = KeepRate(args.analysis_fps)
    except ValueError as exc:
        raise ConfigError("command line", [("--analysis-fps", str(exc))]) from None
    config = camera_settings(args)
    if config.suppress_below == 0:
        print("warning: small-count suppression is off: figures of one or two people, and "
              "the per-frame counts, can single out a person; keep this output to yourself",
              file=sys.stderr)
    silence_opencv()
    # The vision stack is imported here only: the other commands never load OpenCV.
    from agent.vision.intervals import IntervalCounter  # noqa: PLC0415
    from agent.vision.pipeline import build_pipeline  # noqa: PLC0415
    from agent.vision.source import read_video  # noqa: PLC0415

    info = open_video(args, config)
    if config.suppress_below and not args.json:
        print(f"'-': withheld, fewer than {config.suppress_below} people or a figure that would "
              "give such a count away (small-count suppression, docs/privacy.md)",
              file=sys.stderr)
    fps = args.fps or info.fps
    pipeline = build_pipeline(config, start_s=0.0,
                              motion=False if args.no_motion_gate else None)
    totals = IntervalCounter(pipeline.scene.lines, pipeline.scene.zones, interval_s=math.inf,
                             suppress_below=config.suppress_below, start_s=0.0)
    progress = Progress(info.frames, sys.stderr, quiet=args.quiet)
    started = time.perf_counter()
    frames = inferred = 0
    end_s = 0.0
    try:
        with per_frame_table(args.per_frame) as per_frame:
            try:
                for frame in read_video(args.video, config.resize_width, fps):
                    frames += 1
                    end_s = frame.t_s + 1.0 / fps
                    progress.step()
                    if not rate.keeps(frame.t_s):
                        continue  # skipped, as on a box that cannot analyse every frame
                    result = pipeline.process(frame)
                    totals.add(result.counts)
                    for report in result.closed:
                        progress.write(render(report, args.json))
                    per_frame([frame.index, shown(result.detections, config.suppress_below)])
                    inferred += result.inferred
            except KeyboardInterrupt:  # a stream is counted until Ctrl-C: report what was counted
                pass
            for report in pipeline.finish(end_s):
                progress.write(render(report, args.json))
    finally:
        progress.close()
    elapsed = time.perf_counter() - started
    speed = frames / max(elapsed, 1e-9)
    whole = totals.flush(end_s)
    if whole is not None:
        print_totals(whole, inferred, speed, args.json)
    analysed = f", {rate.taken} analysed" if rate.fps else ""
    print(f"{frames} frames ({end_s:.1f} s of video{analysed}) in {elapsed:.1f} s: "
          f"{speed:.1f} frames/s", file=sys.stderr)
    return EXIT_OK


@contextlib.contextmanager
def per_frame_table(path: Path | None) -> Iterator[Callable[[list[int | str]], None]]:
    """A function that writes one row of ``--per-frame``'s CSV (frame, count), or does
    nothing without the option; the file is closed however counting ends."""
    if path is None:
        yield lambda row: None
        return
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["frame", "count"])
        yield writer.writerow


def shown(count: int, suppress_below: int) -> int | str:
    """A per-frame count as written: blank when it falls under the suppression threshold."""
    return count if count >= suppress_below else ""


def open_video(args: argparse.Namespace, config: CameraConfig) -> VideoInfo:
    """The video's ``VideoInfo``, once it is known to open and to hold every line and zone.

    AgentError (exit 1) when it cannot be opened, ConfigError (exit 2) when a
    line or zone lies outside its frame.
    """
    from agent.vision.source import video_info  # noqa: PLC0415

    try:
        info = video_info(args.video)
    except FileNotFoundError as exc:
        raise AgentError(f"{exc} (missing, unreachable, or not a video)") from None
    if info.width and info.height:
        problems = outside_frame(config, info.width, info.height)
        if problems:
            raise ConfigError(str(args.config or "command line"), problems)
    return info


def print_totals(record: IntervalRecord, frames_inferred: int, speed: float,
                 as_json_line: bool) -> None:
    """Whole-video totals: a ``{"summary": ...}`` line on stdout, or a text line on stderr.

    ``record`` is the ``IntervalRecord`` of one interval spanning the video, so
    its figures are already suppressed like every interval's.
    """
    from agent.vision.pipeline import IntervalReport  # noqa: PLC0415

    seconds = record.end_s - record.start_s
    report = IntervalReport(record, frames_inferred, None, None,
                            record.frames / seconds if seconds > 0 else 0.0)
    if as_json_line:
        print(json.dumps({"summary": {**as_json(report), "duration_s": round(seconds, 3),
                                      "processing_fps": round(speed, 1)}}), flush=True)
    else:
        print(f"total {as_text(report)}", file=sys.stderr)


def silence_opencv() -> None:
    """OpenCV's and FFmpeg's own console messages off; must run before cv2 is imported.

    Their warnings on an unreadable file ("[ WARN:0@0.02] global cap.cpp ...")
    say nothing a user can act on; count reports the failure itself. An
    operator debugging a stream can still set the variables (setdefault).
    """
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


def render(report: IntervalReport, as_json_line: bool) -> str:
    """One interval as an output line: JSON, or text."""
    return json.dumps(as_json(report)) if as_json_line else as_text(report)


def as_json(report: IntervalReport) -> dict[str, float | int]:
    """Interval bounds and published figures; ``fps`` is left out (offline it is the video's)."""
    r = report.record
    return {"start_s": round(r.start_s, 3), "end_s": round(r.end_s, 3),
            **{k: _rounded(v) for k, v in report.values() if k != "fps"}}


def as_text(report: IntervalReport) -> str:
    r = report.record
    parts = [f"{_clock(r.start_s)}-{_clock(r.end_s)}", f"frames {r.frames}"]
    parts += [f"{x.line}: in {_text(x.in_count)} out {_text(x.out_count)}" for x in r.lines]
    parts += [f"{z.zone}: mean {_text(z.occupancy_mean)} max {_text(z.occupancy_max)}"
              + (f" ({_text(z.density_mean)}/m²)" if z.density_mean is not None else "")
              for z in r.zones]
    parts.append(f"occupancy: mean {_text(r.occupancy_mean)} max {_text(r.occupancy_max)}")
    return "  ".join(parts)


def _rounded(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(float(value), 4)


def _text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")


def _clock(seconds: float) -> str:
    minutes, s = divmod(seconds, 60.0)
    return f"{int(minutes // 60):02d}:{int(minutes % 60):02d}:{s:04.1f}"


class Progress:
    """Progress on ``stream``: a tqdm bar with ETA on a terminal, a line per 10 % otherwise.

    Result lines go through ``write``: tqdm clears the bar, prints the line
    and redraws the bar below it, so the two never share a terminal line.
    """

    def __init__(self, total: int, stream: IO[str], *, quiet: bool = False) -> None:
        from tqdm import tqdm  # noqa: PLC0415 - the vision extra; count only

        tty = stream.isatty()
        self.total, self.stream = total, stream
        self.deciles = not quiet and not tty and total > 0
        self.done = self._last_decile = 0
        self.started = time.perf_counter()
        self._bar = tqdm(total=total or None, file=stream, unit="frame", dynamic_ncols=True,
                         disable=quiet or not tty)

    def step(self) -> None:
        """One more frame counted."""
        self.done += 1
        self._bar.update(1)
        if self.deciles and 10 * self.done // self.total > self._last_decile:
            self._last_decile = 10 * self.done // self.total
            rate = self.done / max(time.perf_counter() - self.started, 1e-9)
            self.stream.write(f"{10 * self._last_decile}% ({self.done}/{self.total} frames, "
                              f"{rate:.1f}/s)\n")

    def write(self, line: str) -> None:
        """A result line on stdout, above the bar."""
        self._bar.write(line, file=sys.stdout)
        sys.stdout.flush()

    def close(self) -> None:
        self._bar.close()
