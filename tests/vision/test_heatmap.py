"""The anonymising grid: distinct people per cell, the k threshold, the window."""

from __future__ import annotations

import pytest

from agent.vision.heatmap import CELLS, COLS, ROWS, HeatGrid, cell_of


def test_cells_cover_the_frame_row_major() -> None:
    assert (COLS, ROWS, CELLS) == (16, 12, 192)
    assert cell_of(0, 0, 640, 480) == 0
    assert cell_of(639.9, 479.9, 640, 480) == CELLS - 1
    assert cell_of(40, 40, 640, 480) == 1 * COLS + 1
    assert cell_of(640, 10, 640, 480) is None
    assert cell_of(-1, 10, 640, 480) is None


def test_a_cell_shows_only_from_k_distinct_people() -> None:
    grid = HeatGrid(k=3, window_s=600)
    for t in range(100):  # one person standing still for 100 frames is one person
        grid.add(t, 640, 480, [(7, 10, 10)])
    grid.add(100, 640, 480, [(8, 12, 12)])
    assert grid.cells(100) == {}
    assert grid.people(100) == 2
    grid.add(101, 640, 480, [(9, 14, 14), (10, 600, 400)])
    assert grid.cells(101) == {0: 3}
    assert grid.people(101) == 4


def test_a_person_walking_counts_once_in_every_cell_they_cross() -> None:
    grid = HeatGrid(k=1, window_s=6000)
    for x in range(0, 640, 4):
        grid.add(x, 640, 480, [(1, x, 100)])
    cells = grid.cells(640)
    assert len(cells) == COLS and set(cells.values()) == {1}


def test_sightings_older_than_the_window_are_forgotten() -> None:
    grid = HeatGrid(k=2, window_s=60)
    grid.add(0, 640, 480, [(1, 10, 10), (2, 10, 10)])
    grid.add(30, 640, 480, [(3, 10, 10)])
    assert grid.cells(59) == {0: 3}
    assert grid.cells(61) == {}, "track 3 alone is below k"
    assert grid.people(61) == 1
    grid.add(70, 640, 480, [(1, 10, 10)])  # seen again: counts again
    assert grid.cells(70) == {0: 2}
    assert grid.people(200) == 0


def test_clear_and_k_floor() -> None:
    grid = HeatGrid(k=1, window_s=60)
    grid.add(0, 640, 480, [(1, 10, 10)])
    grid.clear()
    assert grid.cells(0) == {}
    with pytest.raises(ValueError, match="at least 1"):
        HeatGrid(k=0, window_s=60)
