"""CenterNet decoder on synthetic heatmaps and side maps built to a known answer."""

import numpy as np
import pytest

from agent.vision.decoders import get_decoder
from agent.vision.decoders.centernet import CenterNetDecoder, local_max

INPUT = (512, 512)  # 128 x 128 cells, stride 4
GRID = 128


def outputs(classes=80, grid=(GRID, GRID)):
    """An all-quiet heatmap and zero side distances, channels last as converted."""
    return [np.zeros((1, *grid, classes), np.float32), np.zeros((1, *grid, 4), np.float32)]


def test_registered_under_its_name():
    assert isinstance(get_decoder("centernet"), CenterNetDecoder)
    spec = CenterNetDecoder().input_spec
    assert spec.rgb and spec.std == (1.0, 1.0, 1.0) and spec.keep_ratio


def test_a_peak_decodes_from_the_cell_corner_with_its_four_sides():
    heat, sides = outputs()
    heat[0, 50, 20, 0] = 0.8  # row 50, column 20: anchor (80, 200) in input pixels
    sides[0, 50, 20] = [6, 24, 12, 26]
    boxes = CenterNetDecoder().decode([heat, sides], INPUT, 0, 0.3)
    assert np.allclose(boxes, [[74, 176, 92, 226, 0.8]])


def test_only_local_maxima_above_the_threshold_of_the_class_count():
    heat, sides = outputs()
    heat[0, 10, 10, 0] = 0.9
    heat[0, 10, 11, 0] = 0.7  # beside a stronger cell: the same person, not reported
    heat[0, 40, 40, 0] = 0.5
    heat[0, 40, 42, 0] = 0.5  # two cells apart: a second peak
    heat[0, 90, 90, 0] = 0.2  # below the threshold
    heat[0, 70, 70, 3] = 0.99  # another class
    boxes = CenterNetDecoder().decode([heat, sides], INPUT, 0, 0.3)
    anchors = sorted(map(tuple, boxes[:, :2].tolist()))
    assert anchors == [(40.0, 40.0), (160.0, 160.0), (168.0, 160.0)]
    assert len(CenterNetDecoder().decode([heat, sides], INPUT, 3, 0.3)) == 1


def test_equal_neighbours_are_both_peaks():
    # A plateau: the max-pool test (>=) keeps both cells; the detector's NMS merges them.
    heat, sides = outputs()
    heat[0, 5, 5, 0] = heat[0, 5, 6, 0] = 0.6
    assert len(CenterNetDecoder().decode([heat, sides], INPUT, 0, 0.5)) == 2


def test_outputs_are_matched_by_shape_and_strides_follow_the_input():
    heat, sides = outputs(grid=(96, 128))  # a 512 x 384 input: still stride 4
    heat[0, 95, 127, 0] = 0.6
    sides[0, 95, 127] = [1, 2, 3, 4]
    boxes = CenterNetDecoder().decode([sides, heat], (512, 384), 0, 0.5)
    assert np.allclose(boxes[0, :4], [507, 378, 511, 384])


def test_local_max_is_a_same_size_three_by_three_max_pool():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(local_max(x), [[5, 6, 7, 7], [9, 10, 11, 11], [9, 10, 11, 11]])


def test_rejects_other_layouts():
    heat, sides = outputs()
    with pytest.raises(ValueError, match="two"):
        CenterNetDecoder().decode([heat], INPUT, 0, 0.5)
    with pytest.raises(ValueError, match="one grid"):
        CenterNetDecoder().decode([heat, sides[:, :64]], INPUT, 0, 0.5)
    with pytest.raises(ValueError, match="one grid"):
        CenterNetDecoder().decode(outputs(classes=4), INPUT, 0, 0.5)
    with pytest.raises(ValueError, match="class 80 not among 80"):
        CenterNetDecoder().decode([heat, sides], INPUT, 80, 0.5)
    assert CenterNetDecoder().decode([heat, sides], INPUT, 0, 0.5).shape == (0, 5)
