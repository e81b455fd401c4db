"""The set-up channel's guard: what a setup record may say, and only while set-up is on.

The daemon decodes every setup record under the camera's schema (``record.py``) and
admits it only inside a set-up session (``setup_session.py``). Each test forges what a
leaking counter would send.
"""

from __future__ import annotations

import time

import pytest

from agent.config.camera import CameraConfig
from agent.vision.heatmap import CELLS
from agent.vision.record import HEADER, PAIR, Gate, Kind, RecordRejected, schema_for
from agent.vision.setup_session import GRACE_S, SetupSession

CAMERA = CameraConfig.model_validate({
    "source": "0", "setup": {"min_people": 3},
    "lines": [{"name": "door", "x1": 0, "y1": 0, "x2": 10, "y2": 10}]})
SCHEMA = schema_for(CAMERA)
NOW_MS = 1_700_000_000_000
FRAME = (("frame_width", 768), ("frame_height", 576))


def setup_record(*values: tuple[str, float]) -> bytes:
    return SCHEMA.encode(Kind.SETUP, NOW_MS, (*FRAME, *values))


def test_an_honest_record_decodes_to_cells_of_at_least_k() -> None:
    record = SCHEMA.decode(setup_record(("heat_people", 7), ("heat_cell_5", 3),
                                        ("heat_cell_191", 7), ("setup_line_door_in", 2)))
    assert dict(record.values)["heat_cell_191"] == 7
    assert SCHEMA.max_size >= HEADER.size + (CELLS + 5) * PAIR.size


@pytest.mark.parametrize(("values", "rule"), [
    ((("heat_people", 7), ("heat_cell_5", 2)), "heat_cell_5 is outside 3"),
    ((("heat_people", 2),), "heat_people is outside 3"),
    ((("heat_people", 7), ("heat_cell_5", 9)), "more people than the window"),
    ((("heat_cell_5", 4),), "more people than the window"),
    ((("heat_people", 7), ("heat_cell_5", 3.5)), "whole number"),
    ((("heat_people", 7), ("heat_cell_5", float("nan"))), "outside"),
    ((("setup_line_door_in", -1),), "outside"),
])
def test_forged_cells_are_refused(values: tuple[tuple[str, float], ...], rule: str) -> None:
    with pytest.raises(RecordRejected, match=rule):
        SCHEMA.decode(setup_record(*values))


def test_foot_points_have_no_name_and_no_index() -> None:
    with pytest.raises(ValueError, match="not a setup quantity"):
        setup_record(("foot_x", 120.5))
    forged = HEADER.pack(b"LMC", 1, Kind.SETUP, SCHEMA.fingerprint, NOW_MS, 3) \
        + PAIR.pack(SCHEMA.index["frame_width"], 768) \
        + PAIR.pack(SCHEMA.index["frame_height"], 576) + PAIR.pack(len(SCHEMA.quantities), 1.0)
    with pytest.raises(RecordRejected, match="not in this camera's schema"):
        SCHEMA.decode(forged)


def test_a_setup_record_must_state_the_frame_and_stay_in_its_kind() -> None:
    with pytest.raises(RecordRejected, match="frame's size"):
        SCHEMA.decode(SCHEMA.encode(Kind.SETUP, NOW_MS, (("heat_people", 3),)))
    forged = HEADER.pack(b"LMC", 1, Kind.INTERVAL, SCHEMA.fingerprint, NOW_MS, 1) \
        + PAIR.pack(SCHEMA.index["heat_cell_0"], 5.0)
    with pytest.raises(RecordRejected, match="does not belong in a interval record"):
        SCHEMA.decode(forged)


def test_k_is_part_of_the_schema() -> None:
    other = schema_for(CAMERA.model_copy(update={"setup": CAMERA.setup.model_copy(
        update={"min_people": 4})}))
    assert other.fingerprint != SCHEMA.fingerprint


def test_the_gate_allows_one_setup_record_per_second() -> None:
    clock = [100.0]
    gate = Gate(SCHEMA, 100.0, now_s=lambda: clock[0], wall_ms=lambda: NOW_MS)
    record = SCHEMA.decode(setup_record())
    gate.admit(record)
    gate.admit(record)
    with pytest.raises(RecordRejected, match="one per second"):
        gate.admit(record)
    clock[0] += 5
    gate.admit(record)


def test_setup_records_only_while_a_session_lasts() -> None:
    session = SetupSession()
    record = SCHEMA.decode(setup_record(("heat_people", 4), ("heat_cell_3", 4),
                                        ("setup_line_door_in", 2), ("setup_line_door_out", 1)))
    with pytest.raises(RecordRejected, match="set-up mode is off"):
        session.admit(record, 10.0)
    session.start(10.0, minutes=1)
    assert session.renew_due(10.0) and not session.renew_due(11.0) and session.renew_due(16.0)
    session.admit(record, 20.0)
    view = session.view(20.0)
    assert view is not None
    assert view.frame == (768, 576) and view.cells == {3: 4} and view.people == 4
    assert view.lines == {"door": (2, 1)}
    assert session.view(70.0) is None, "the session ended by itself"
    assert not session.renew_due(70.0)
    session.admit(record, 70.0 + GRACE_S - 1)  # the lease the counter still held
    assert session.view(70.0 + GRACE_S - 1) is None
    with pytest.raises(RecordRejected, match="set-up mode is off"):
        session.admit(record, 70.0 + GRACE_S + 1)
    session.start(time.monotonic(), minutes=5)
    session.stop(time.monotonic())
    assert session.remaining_s(time.monotonic()) == 0
