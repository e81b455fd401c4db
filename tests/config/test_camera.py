"""``[cameras.<id>]`` sections: every mistake named with its key, ids unique across the file."""

from __future__ import annotations

import pytest

from agent.config import parse_config
from agent.errors import ConfigError

BASE = 'device_id = "box"\n[sensors.pm]\nmodel = "sds011"\nport = "/dev/ttyUSB0"\n'


def problems(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + text, "box.toml")
    return dict(info.value.problems)


def test_a_minimal_camera_takes_the_documented_defaults() -> None:
    camera = parse_config(BASE + '[cameras.door]\nsource = "0"\n', "box.toml").cameras["door"]
    assert (camera.fps_cap, camera.interval_s, camera.score_threshold, camera.nms_iou) == \
        (10.0, 60.0, 0.4, 0.5)
    assert camera.model is None and camera.decoder == "nanodet" and camera.threads == 2
    assert camera.motion.enabled and camera.suppress_below == 3 and camera.loop


def test_lines_zones_and_alerts_are_checked() -> None:
    found = problems("""
[cameras.door]
source = "/dev/video0"
decoder = "ssd"
lines = [{ name = "Door!", x1 = 0, y1 = 0, x2 = 5, y2 = 0 },
         { name = "b", x1 = 3, y1 = 3, x2 = 3, y2 = 3 }]
zones = [{ name = "z", polygon = [[0, 0], [1, 1]] },
         { name = "w", polygon = [[0, 0], [9, 0], [9, 9]], density_on = 2, density_off = 1 }]
""")
    assert "cameras.door.decoder" in found and "unknown decoder 'ssd'" in found[
        "cameras.door.decoder"]
    assert "cameras.door.lines[0].name" in found
    assert "start and end point must differ" in found["cameras.door.lines[1]"]
    assert "cameras.door.zones[0].polygon" in found
    assert found["cameras.door.zones[1]"] == "density alerts need area_m2"


def test_an_alert_may_not_fire_on_fewer_people_than_the_reports_may_show() -> None:
    section = """
[cameras.door]
source = "0"
suppress_below = {k}
[[cameras.door.zones]]
name = "kerb"
polygon = [[0, 0], [9, 0], [9, 9]]
area_m2 = 1
density_on = {on}
density_off = 0.5
"""
    found = problems(section.format(k=3, on=1))
    assert "density_on × area_m2 = 1 persons, below suppress_below = 3" in found["cameras.door"]
    for k, on in ((3, 3), (0, 1)):
        parse_config(BASE + section.format(k=k, on=on), "box.toml")


def test_names_must_be_unique_and_settings_in_range(tmp_path) -> None:
    found = problems(f"""
[cameras.door]
source = "0"
model = "{tmp_path / 'missing.onnx'}"
fps_cap = 0
interval_s = 0.5
unknown_key = 1
roi_ignore = [[[0, 0], [1, 1]]]
lines = [{{ name = "a", x1 = 0, y1 = 0, x2 = 1, y2 = 1 }}]
zones = [{{ name = "a", polygon = [[0, 0], [9, 0], [9, 9]] }}]
""")
    assert "not found" in found["cameras.door.model"]
    assert {"cameras.door.fps_cap", "cameras.door.interval_s", "cameras.door.unknown_key",
            "cameras.door.roi_ignore"} <= set(found)


def test_camera_ids_are_sensor_ids_and_may_not_clash() -> None:
    found = problems('[cameras.pm]\nsource = "0"\n[cameras."Bad Id"]\nsource = "0"\n'
                     '[cameras.agent]\nsource = "0"\n')
    assert "'Bad Id'" in found["cameras"] and "'agent'" in found["cameras"]
    assert "use the id of a sensor" in problems('[cameras.pm]\nsource = "0"\n')[""]
