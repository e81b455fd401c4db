"""``lokaalmeten count``: the pipeline offline on a video file, as an operator runs it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from agent.cli import main
from agent.cli.count import duration, parse_line, parse_zone
from tests.vision.streams import INT8_MODEL, MjpegServer, Plan, vtest_frames, write_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 60 frames of vtest.avi at its 10 fps: 6 s of video."""
    return write_clip(tmp_path_factory.mktemp("count") / "vtest60.avi", vtest_frames(0, 60), 10)


def test_json_lines_per_interval_and_per_frame_counts(clip: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    per_frame = tmp_path / "counts.csv"
    code = main(["count", str(clip), "--line", "path=230,340,230,170",
                 "--zone", "lawn=0,250,400,250,400,576,0,576@120", "--interval", "2s",
                 "--json", "--per-frame", str(per_frame), "--model", str(INT8_MODEL)])
    assert code == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
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


def test_text_output_and_the_partial_last_interval(clip: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["count", str(clip), "--interval", "4s", "--model", str(INT8_MODEL),
                 "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("00:00:00.0-00:00:04.0  frames 40")
    assert lines[1].startswith("00:00:04.0-00:00:06.0  frames 20")


def test_camera_section_from_a_config_file(clip: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "box.toml"
    config.write_text(f'device_id = "box"\n[cameras.street]\nsource = "/dev/video0"\n'
                      f'model = "{INT8_MODEL}"\ninterval_s = 3\nsuppress_below = 100\n'
                      '[[cameras.street.lines]]\nname = "door"\nx1 = 230\ny1 = 340\n'
                      'x2 = 230\ny2 = 170\n')
    assert main(["count", str(clip), "--config", str(config), "--camera", "street",
                 "--json", "--quiet"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["end_s"] for r in rows] == [3, 6]
    assert all("occupancy_mean" not in r and "line_door_in" not in r for r in rows), \
        "figures under suppress_below are withheld"


@pytest.mark.parametrize(("argv", "message"), [
    (["--line", "1,2,3"], "need x1,y1,x2,y2"),
    (["--zone", "a=1,2,3,4"], "at least three x,y points"),
    (["--line", "Bad-Name=0,0,9,9"], "lines[0].name"),
    (["--camera", "street"], "--config and --camera go together"),
])
def test_mistakes_are_usage_errors(clip: Path, argv: list[str], message: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["count", str(clip), *argv]) == 2
    assert message in capsys.readouterr().err


def test_missing_video_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["count", str(tmp_path / "none.avi")]) == 2
    assert "cannot open video" in capsys.readouterr().err


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
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["start_s"], r["end_s"], r["frames"]) for r in rows] == \
        [(0, 1, 10), (1, 2, 10), (2, 3, 10)]
    assert rows[0]["occupancy_max"] >= 2
