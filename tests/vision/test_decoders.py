"""Output decoders on synthetic tensors built to a known answer, and NMS."""

import numpy as np
import pytest

from agent.vision.decoders import decoder_names, get_decoder, register
from agent.vision.decoders.nanodet import NanoDetDecoder, expected_distances
from agent.vision.decoders.yolo import YoloDecoder
from agent.vision.nms import nms

INPUT = (416, 416)
BINS = 11
BIG = 40.0  # a logit this far above the rest puts all the probability on one bin


def nanodet_outputs(classes=80, order=None):
    """Six all-quiet tensors in the default model's layout: scores 0, flat distances."""
    outs = []
    for grid in (52, 26, 13):
        outs.append(np.zeros((1, grid * grid, classes), np.float32))
        outs.append(np.zeros((1, grid * grid, 4 * BINS), np.float32))
    return [outs[i] for i in order] if order else outs


def one_hot_sides(left, top, right, bottom):
    """Regression logits whose expectation is exactly the given bins per side."""
    logits = np.zeros((4, BINS), np.float32)
    for side, b in enumerate((left, top, right, bottom)):
        logits[side, b] = BIG
    return logits.reshape(-1)


def test_registry_knows_the_builtin_families():
    assert {"nanodet", "yolov8", "yolo11"} <= set(decoder_names())
    assert isinstance(get_decoder("nanodet"), NanoDetDecoder)
    assert isinstance(get_decoder("yolo11"), YoloDecoder)
    with pytest.raises(KeyError, match=r"known: .*nanodet"):
        get_decoder("ssd")
    with pytest.raises(ValueError, match="twice"):
        register("nanodet")(NanoDetDecoder)


def test_expected_distance_is_the_softmax_mean_not_the_argmax():
    one_hot = one_hot_sides(3, 0, 10, 7)[None]
    assert np.allclose(expected_distances(one_hot, BINS), [[3, 0, 10, 7]], atol=1e-6)
    # Two equally likely bins 2 and 4: the mean is 3, an argmax would say 2.
    split = np.zeros((1, 4, BINS), np.float32)
    split[0, :, 2] = split[0, :, 4] = BIG
    assert np.allclose(expected_distances(split.reshape(1, -1), BINS), 3.0, atol=1e-6)
    # All logits equal: the mean of 0..10.
    assert np.allclose(expected_distances(np.zeros((1, 44), np.float32), BINS), 5.0)


def test_nanodet_single_cell_decodes_to_its_box():
    outs = nanodet_outputs()
    row, col = 5, 7  # stride 16, grid 26: cell 5 * 26 + 7
    cell = row * 26 + col
    outs[2][0, cell, 0] = 0.9
    outs[3][0, cell] = one_hot_sides(3, 4, 2, 6)
    boxes = NanoDetDecoder().decode(outs, INPUT, 0, 0.5)
    cx, cy = (col + 0.5) * 16, (row + 0.5) * 16  # the cell's centre: 120, 88
    expected = [cx - 3 * 16, cy - 4 * 16, cx + 2 * 16, cy + 6 * 16, 0.9]
    assert boxes.shape == (1, 5)
    assert np.allclose(boxes[0], expected, atol=1e-4)
    assert np.allclose(boxes[0, :4], [72, 24, 152, 184], atol=1e-4)


def test_nanodet_decodes_every_stride_and_ignores_other_classes_and_low_scores():
    outs = nanodet_outputs()
    outs[0][0, 0, 0] = 0.7  # stride 8, top-left cell
    outs[1][0, 0] = one_hot_sides(1, 1, 1, 1)
    outs[4][0, 168, 0] = 0.6  # stride 32, bottom-right cell (12, 12)
    outs[5][0, 168] = one_hot_sides(2, 2, 0, 0)
    outs[2][0, 100, 0] = 0.29  # below the threshold
    outs[2][0, 200, 5] = 0.99  # another class: not a person
    boxes = NanoDetDecoder().decode(outs, INPUT, 0, 0.3)
    assert np.allclose(boxes[:, :4], [[-4, -4, 12, 12], [336, 336, 400, 400]], atol=1e-4)
    assert np.allclose(boxes[:, 4], [0.7, 0.6])
    # The same tensors asked for class 5 give that one box only.
    assert len(NanoDetDecoder().decode(outs, INPUT, 5, 0.3)) == 1


def test_nanodet_matches_outputs_by_shape_not_order():
    outs = nanodet_outputs()
    outs[0][0, 60, 0] = 0.8
    outs[1][0, 60] = one_hot_sides(2, 3, 4, 5)
    shuffled = [outs[i] for i in (5, 2, 0, 3, 1, 4)]
    a = NanoDetDecoder().decode(outs, INPUT, 0, 0.5)
    b = NanoDetDecoder().decode(shuffled, INPUT, 0, 0.5)
    assert np.array_equal(a, b) and len(a) == 1


def test_nanodet_reads_the_merged_single_tensor_export():
    separate = nanodet_outputs()
    separate[2][0, 33, 0] = 0.75
    separate[3][0, 33] = one_hot_sides(1, 2, 3, 4)
    merged = np.concatenate(
        [np.concatenate([separate[i], separate[i + 1]], axis=2) for i in (0, 2, 4)], axis=1)
    assert merged.shape == (1, 2704 + 676 + 169, 80 + 44)
    a = NanoDetDecoder().decode(separate, INPUT, 0, 0.5)
    b = NanoDetDecoder().decode([merged], INPUT, 0, 0.5)
    assert np.array_equal(a, b) and len(b) == 1


def test_nanodet_plus_anchor_at_the_cell_corner():
    outs = nanodet_outputs()
    outs[0][0, 53, 0] = 0.9  # stride 8, row 1, col 1
    outs[1][0, 53] = one_hot_sides(1, 1, 1, 1)
    box = NanoDetDecoder(center_offset=0.0).decode(outs, INPUT, 0, 0.5)[0]
    assert np.allclose(box[:4], [0, 0, 16, 16], atol=1e-4)


def test_nanodet_rejects_tensors_of_another_layout():
    with pytest.raises(ValueError, match=r"stride 8.*among output shapes"):
        NanoDetDecoder().decode(nanodet_outputs(), (320, 320), 0, 0.5)
    with pytest.raises(ValueError, match="expected"):
        NanoDetDecoder(reg_max=7).decode(nanodet_outputs(), INPUT, 0, 0.5)
    with pytest.raises(ValueError, match="class 80 not among 80"):
        NanoDetDecoder().decode(nanodet_outputs(), INPUT, 80, 0.5)
    with pytest.raises(ValueError, match="one output"):
        NanoDetDecoder().decode([np.zeros((1, 100, 124), np.float32)], INPUT, 0, 0.5)


def yolo_table(classes=80, candidates=8400):
    return np.zeros((1, 4 + classes, candidates), np.float32)


def test_yolo_candidate_decodes_from_centre_and_size():
    out = yolo_table()
    out[0, :4, 1234] = [100, 200, 40, 80]
    out[0, 4, 1234] = 0.9
    out[0, :4, 99] = [300, 300, 10, 10]
    out[0, 4 + 5, 99] = 0.95  # class 5 only
    out[0, 4, 500] = 0.2  # a person below the threshold
    boxes = YoloDecoder().decode([out], (640, 640), 0, 0.25)
    assert np.allclose(boxes, [[80, 160, 120, 240, 0.9]])


def test_yolo_transposed_and_single_class_exports():
    out = yolo_table(classes=1, candidates=2100)
    out[0, :, 7] = [50, 60, 20, 30, 0.8]
    expected = [[40, 45, 60, 75, 0.8]]
    assert np.allclose(YoloDecoder().decode([out], (320, 320), 0, 0.5), expected)
    transposed = np.ascontiguousarray(out.transpose(0, 2, 1))  # [1, 2100, 5]
    assert np.allclose(YoloDecoder().decode([transposed], (320, 320), 0, 0.5), expected)
    assert np.allclose(YoloDecoder(transposed=True).decode([transposed], (320, 320), 0, 0.5),
                       expected)


def test_yolo_rejects_bad_tables():
    with pytest.raises(ValueError, match=r"4 \+ classes"):
        YoloDecoder().decode([np.zeros((1, 4, 100), np.float32)], (640, 640), 0, 0.5)
    with pytest.raises(ValueError, match="class 1 not among 1"):
        YoloDecoder().decode([yolo_table(classes=1)], (640, 640), 1, 0.5)
    assert YoloDecoder().decode([yolo_table()], (640, 640), 0, 0.5).shape == (0, 5)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = [[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]]
    scores = [0.8, 0.9, 0.5, 0.7]
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.5, max_detections=1).tolist() == [1]
    assert nms(np.zeros((0, 4)), [], 0.5).tolist() == []


def test_nms_threshold_is_strict_and_ties_keep_the_earlier_box():
    # IoU of these two is exactly 1/3: kept at 1/3, suppressed just below.
    boxes = [[0, 0, 2, 1], [1, 0, 3, 1]]
    assert nms(boxes, [0.5, 0.5], 1 / 3).tolist() == [0, 1]
    assert nms(boxes, [0.5, 0.5], 0.33).tolist() == [0]
    # Nested boxes: a small box inside a big one is not suppressed by IoU alone.
    assert nms([[0, 0, 100, 100], [10, 10, 20, 20]], [0.9, 0.8], 0.5).tolist() == [0, 1]
    with pytest.raises(ValueError):
        nms(boxes, [0.5], 0.5)
