"""Set-up mode's channel, end to end: a real counter on vtest.avi, the real boundary.

The daemon's supervisor starts a confined counter process through the zygote, switches
set-up mode on, and collects what the boundary admits. Checked: heat map cells arrive,
each of at least k distinct people and no more than the window saw; the boundary never
refused a record; nothing of set-up becomes a measurement; when the session is stopped
nothing more is kept. ``tests/privacy/plant_leaks.py`` plants raw foot points, a cell
below k and a track's number into the counter's set-up code (``setup_*`` leaks) and
requires this test to fail for each: "the boundary refused".
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.config.camera import CameraConfig
from agent.vision.process import CounterSupervisor
from tests.mqtt_broker import wait_until
from tests.vision.streams import INT8_MODEL, require_media

pytestmark = pytest.mark.slow
K = 3


def camera(video: Path) -> CameraConfig:
    return CameraConfig.model_validate({
        "source": str(video), "model": str(INT8_MODEL), "fps_cap": 5, "interval_s": 60,
        "setup": {"min_people": K, "window_s": 600},
        "lines": [{"name": "path", "x1": 230, "y1": 340, "x2": 230, "y2": 170}]})


def test_only_k_anonymous_cells_cross_and_only_in_session() -> None:
    supervisor = CounterSupervisor("street", camera(require_media()), backoff_min_s=30)
    supervisor.start()
    try:
        supervisor.setup.start(time.monotonic(), minutes=10)
        views = []

        def cells_seen() -> bool:
            assert supervisor.rejected == 0, "the boundary refused a setup record"
            view = supervisor.setup.view(time.monotonic())
            if view is not None:
                views.append(view)
            return view is not None and len(view.cells) >= 2

        assert wait_until(cells_seen, 900, step_s=1.0), "no heat map cells arrived"
        # cells_seen() first: it is what collects the views (the other order never looked
        # again when the cells came before five views, as on a loaded machine).
        assert wait_until(lambda: cells_seen() and len(views) >= 5, 60, step_s=1.0)
        for view in views:
            assert view.frame == (768, 576)
            assert all(K <= n <= view.people for n in view.cells.values()), view
            assert set(view.lines) == {"path"}
        assert supervisor.rejected == 0, "the boundary refused a setup record"
        assert supervisor.restarts == 0
        assert not [m for batch in [supervisor.drain()] for m in batch
                    if m.quantity.startswith(("heat_", "setup_", "frame_"))]
        supervisor.setup.stop(time.monotonic())
        assert supervisor.setup.view(time.monotonic()) is None
    finally:
        supervisor.stop()
    assert supervisor.rejected == 0, "the boundary refused a setup record"
