"""``lokaalmeten count``: the pipeline offline on a video file, as an operator runs it."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from agent.cli import main
from agent.cli.count import duration, parse_line, parse_zone
from agent.config.camera import CameraConfig
from agent.vision.pipeline import build_pipeline
from agent.vision.source import read_video
from tests.vision.streams import INT8_MODEL, MjpegServer, Plan, vtest_frames, write_clip

pytestmark = pytest.mark.slow  # each test runs the counter on a video in a subprocess

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 60 frames of vtest.avi at its 10 fps: 6 s of video."""
    return write_clip(tmp_path_factory.mktemp("count") / "vtest60.avi", vtest_frames(0, 60), 10)


@pytest.fixture(scope="module")
def clip15s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 150 frames of vtest.avi: 15 s in which people cross a line across the square."""
    return write_clip(tmp_path_factory.mktemp("count") / "vtest150.avi", vtest_frames(0, 150), 10)


def unsuppressed(tmp_path: Path, k: int = 0) -> list[str]:
    """--config/--camera options for a camera section with suppress_below = k."""
    config = tmp_path / f"k{k}.toml"
    config.write_text(f'device_id = "box"\n[cameras.street]\nsource = "/dev/video0"\n'
                      f'model = "{INT8_MODEL}"\nsuppress_below = {k}\n')
    return ["--config", str(config), "--camera", "street"]


def test_json_lines_per_interval_and_per_frame_counts(clip: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    per_frame = tmp_path / "counts.csv"
    code = main(["count", str(clip), "--line", "path=230,340,230,170",
                 "--zone", "lawn=0,250,400,250,400,576,0,576@120", "--interval", "2s",
                 "--json", "--per-frame", str(per_frame), "--model", str(INT8_MODEL),
                 "--suppress-below", "0"])
    assert code == 0
    out, err = capsys.readouterr()
    assert "warning: small-count suppression is off" in err
    *rows, summary = [json.loads(line) for line in out.splitlines()]
    assert set(summary) == {"summary"}, "the last line holds the whole-video totals"
    assert [(r["start_s"], r["end_s"]) for r in rows] == [(0, 2), (2, 4), (4, 6)]
    assert all(r["frames"] == 20 and r["frames_inferred"] >= 1 for r in rows)
    assert all({"line_path_in", "line_path_out", "zone_lawn_occupancy_mean",
                "zone_lawn_density_max", "occupancy_mean", "occupancy_max",
                "inference_ms_p50"} <= set(r) for r in rows)
    assert all("fps" not in r for r in rows), "offline, fps would only repeat the video's"
    assert 3 <= rows[0]["occupancy_max"] <= 6  # hand counts: 3 at frame 0, 5 at frame 19
    with per_frame.open(newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["frame", "count"] and len(table) == 61
    assert [int(r[0]) for r in table[1:]] == list(range(60))
    assert int(table[1][1]) == 3
    assert "100%" in err and "60 frames (6.0 s of video)" in err


def test_per_frame_counts_under_the_threshold_are_blank(clip: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    per_frame = tmp_path / "counts.csv"
    assert main(["count", str(clip), "--per-frame", str(per_frame), "--model", str(INT8_MODEL),
                 "--suppress-below", "4", "--quiet"]) == 0
    assert "suppression is off" not in capsys.readouterr().err
    with per_frame.open(newline="") as f:
        counts = [row[1] for row in list(csv.reader(f))[1:]]
    assert counts[0] == "", "three people in frame 0: under 4, blank"
    assert "" in counts and all(c == "" or int(c) >= 4 for c in counts)


def test_text_output_and_the_partial_last_interval(clip: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["count", str(clip), "--interval", "4s", "--model", str(INT8_MODEL),
                 "--quiet"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("00:00:00.0-00:00:04.0  frames 40")
    assert lines[1].startswith("00:00:04.0-00:00:06.0  frames 20")
    assert "total 00:00:00.0-00:00:06.0  frames 60" in err, "totals go to stderr in text mode"
    assert "'-': withheld, fewer than 3 people" in err, "a blank figure is explained"
    assert "%" not in err, "--quiet: no progress"


def test_camera_section_from_a_config_file(clip: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "box.toml"
    config.write_text(f'device_id = "box"\n[cameras.street]\nsource = "/dev/video0"\n'
                      f'model = "{INT8_MODEL}"\ninterval_s = 3\nsuppress_below = 100\n'
                      '[[cameras.street.lines]]\nname = "door"\nx1 = 230\ny1 = 340\n'
                      'x2 = 230\ny2 = 170\n')
    assert main(["count", str(clip), "--config", str(config), "--camera", "street",
                 "--json", "--quiet"]) == 0
    *rows, last = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["end_s"] for r in rows] == [3, 6]
    assert all("occupancy_mean" not in r and "line_door_in" not in r for r in rows), \
        "figures under suppress_below are withheld"
    summary = last["summary"]
    assert summary["frames"] == 60 and summary["duration_s"] == 6
    withheld = {"occupancy_mean", "occupancy_max", "line_door_in", "line_door_out"}
    assert not withheld & set(summary), "whole-video totals under suppress_below are withheld too"


@pytest.mark.parametrize(("argv", "message"), [
    (["--line", "1,2,3"], "need x1,y1,x2,y2"),
    (["--zone", "a=1,2,3,4"], "at least three x,y points"),
    (["--line", "Bad-Name=0,0,9,9"], "lines[0].name"),
    (["--camera", "street"], "--config and --camera go together"),
    (["--analysis-fps", "0"], "--analysis-fps: must be a number above 0"),
    (["--analysis-fps", "nan"], "--analysis-fps: must be a number above 0"),
])
def test_mistakes_are_usage_errors(clip: Path, argv: list[str], message: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["count", str(clip), *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_slower_box_is_emulated_by_analysing_fewer_frames(clip: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    """--analysis-fps 3 on the 10 fps clip: the frames a Pi 4 would take, and only those."""
    per_frame = tmp_path / "counts.csv"
    assert main(["count", str(clip), *unsuppressed(tmp_path), "--interval", "2s", "--json",
                 "--per-frame", str(per_frame), "--analysis-fps", "3",
                 "--line", "path=230,340,230,170"]) == 0
    out, err = capsys.readouterr()
    *rows, last = [json.loads(x) for x in out.splitlines()]
    assert [r["frames"] for r in rows] == [6, 6, 6] and last["summary"]["frames"] == 18
    with per_frame.open(newline="") as f:
        analysed = [int(row[0]) for row in list(csv.reader(f))[1:]]
    assert analysed == [0, 3, 6, 10, 13, 16, 20, 23, 26, 30, 33, 36, 40, 43, 46, 50, 53, 56]
    assert "60 frames (6.0 s of video, 18 analysed)" in err
    assert 3 <= rows[0]["occupancy_max"] <= 6, "the people are still counted"


def test_whole_video_totals_add_up_the_intervals(clip15s: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["count", str(clip15s), *unsuppressed(tmp_path), "--interval", "5s", "--json",
                 "--quiet", "--line", "path=230,340,230,170", "--line", "square=0,300,768,300",
                 "--zone", "lawn=0,250,400,250,400,576,0,576"]) == 0
    *rows, last = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    total = last["summary"]
    assert len(rows) == 3
    assert (total["start_s"], total["end_s"], total["duration_s"]) == (0, 15, 15)
    assert total["frames"] == sum(r["frames"] for r in rows) == 150
    for name in ("line_path_in", "line_path_out", "line_square_in", "line_square_out"):
        assert total[name] == sum(r[name] for r in rows), name
    assert total["line_square_in"] + total["line_square_out"] >= 3, "people cross the square"
    for area in ("", "zone_lawn_"):
        assert total[f"{area}occupancy_max"] == max(r[f"{area}occupancy_max"] for r in rows)
        assert total[f"{area}occupancy_mean"] == pytest.approx(
            sum(r[f"{area}occupancy_mean"] * r["frames"] for r in rows) / 150, abs=1e-3)
    assert total["processing_fps"] > 0 and "fps" not in total


def test_fps_is_per_second_of_counting_in_the_first_and_the_last_interval(clip: Path) -> None:
    """The daemon's intervals lie on a UTC grid: the first began before counting started."""
    config = CameraConfig(source=str(clip), model=INT8_MODEL, interval_s=2)
    pipeline = build_pipeline(config, start_s=-1.5)
    reports, end_s = [], 0.0
    for frame in read_video(clip):
        reports += pipeline.process(frame).closed
        end_s = frame.t_s + 0.1
    reports += pipeline.finish(end_s)
    assert [(r.record.start_s, round(r.record.end_s, 6), r.record.frames) for r in reports] == \
        [(-1.5, 0.5, 5), (0.5, 2.5, 20), (2.5, 4.5, 20), (4.5, 6.0, 15)]
    assert [r.fps for r in reports] == pytest.approx([10.0] * 4), \
        "5 frames in the 0.5 s counted of the first interval are 10 frames/s, not 2.5"


def test_lines_and_zones_outside_the_frame_are_refused(clip: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["count", str(clip), "--model", str(INT8_MODEL), "--quiet",
                 "--line", "edge=0,576,768,576", "--line", "far=700,300,800,300",
                 "--zone", "lawn=0,250,400,250,400,576", "--zone", "sky=0,0,10,0,10,-5"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines()[1:] == [
        "command line: line 'far': end point (800, 300) outside the 768x576 video frame "
        "(x 0-768, y 0-576)",
        "command line: zone 'sky': vertex (10, -5) outside the 768x576 video frame "
        "(x 0-768, y 0-576)"], "the frame's edges are inside; every offender is named"


def count_process(*argv: str) -> subprocess.CompletedProcess[str]:
    """``lokaalmeten count`` as its own process: OpenCV and FFmpeg write to fd 2 themselves."""
    return subprocess.run([sys.executable, "-m", "agent", "count", *argv], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120, check=False)


def test_on_a_terminal_result_lines_and_the_progress_bar_never_share_a_line(clip: Path) -> None:
    master, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "count", str(clip), "--interval", "1s",
         "--model", str(INT8_MODEL)], stdout=terminal, stderr=terminal, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    os.close(terminal)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    assert process.wait(60) == 0
    text = screen.decode()
    # What stays on each terminal line: the text after its last carriage return.
    shown = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    stamped = [line for line in shown if re.search(r"\d\d:\d\d:\d\d\.\d-", line)]
    interval = (r"\d\d:\d\d:\d\d\.\d-\d\d:\d\d:\d\d\.\d  frames \d+  "
                r"occupancy: mean ([\d.]+|-) max \d+")
    assert len(stamped) == 7, text
    assert all(re.fullmatch(interval, line) for line in stamped[:6]), stamped
    assert re.fullmatch("total " + interval, stamped[6]), stamped
    assert re.search(r"100%\|█+\| 60/60 \[\d\d:\d\d<\d\d:\d\d", text), "a bar with its ETA"


def test_an_unreadable_or_missing_video_is_one_clear_error_line(tmp_path: Path) -> None:
    garbage = tmp_path / "broken.avi"
    garbage.write_bytes(b"RIFF\x00\x00\x00\x00AVI " + bytes(range(256)) * 40)
    for video in (garbage, tmp_path / "none.avi", tmp_path):
        result = count_process(str(video))
        assert (result.returncode, result.stdout) == (1, ""), result.stderr
        assert result.stderr == f"error: cannot open video {video} (missing, unreachable, " \
                                "or not a video)\n", "no OpenCV or FFmpeg warnings"


def test_argument_parsers() -> None:
    assert duration("10s") == 10 and duration("1.5m") == 90 and duration("250ms") == 0.25
    assert duration("2h") == 7200 and duration("45") == 45
    assert parse_line("230,340,230,170", "line1") == {
        "name": "line1", "x1": 230, "y1": 340, "x2": 230, "y2": 170}
    assert parse_zone("bench=0,0,10,0,10,10@2.5", "zone1") == {
        "name": "bench", "polygon": [(0, 0), (10, 0), (10, 10)], "area_m2": 2.5}


def test_an_mjpeg_stream_is_counted_until_it_ends(capsys: pytest.CaptureFixture[str]) -> None:
    camera = MjpegServer(vtest_frames(0, 30), fps=30, default=Plan("serve", 30)).start()
    try:
        code = main(["count", camera.url, "--fps", "10", "--interval", "1s", "--json",
                     "--model", str(INT8_MODEL), "--quiet"])
    finally:
        camera.stop()
    assert code == 0
    *rows, last = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["start_s"], r["end_s"], r["frames"]) for r in rows] == \
        [(0, 1, 10), (1, 2, 10), (2, 3, 10)]
    assert last["summary"]["frames"] == 30
    assert rows[0]["occupancy_max"] >= 2
