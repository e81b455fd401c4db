"""Stages 1 to 3 of the tracker: optimal assignment of tracks to detections by box overlap."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from agent.vision.geometry import iou_matrix

Array = NDArray[np.float64]


def match_by_iou(
    boxes: Array,
    dets: Array,
    track_idx: Sequence[int],
    det_idx: Sequence[int] | NDArray[np.intp],
    *,
    min_iou: float,
    fuse_score: bool,
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Optimal assignment of tracks to detections by IoU, gated at ``min_iou``.

    Returns matched (track, detection) index pairs and the unmatched track and
    detection indices, all as indices into the caller's arrays.
    """
    track_idx, det_idx = list(track_idx), [int(j) for j in det_idx]
    if not track_idx or not det_idx:
        return [], track_idx, det_idx
    iou = iou_matrix(boxes[track_idx], dets[det_idx, :4])
    similarity = iou * dets[det_idx, 4][None, :] if fuse_score else iou
    cost = np.where(iou >= min_iou, 1.0 - similarity, 1e6)
    rows, cols = linear_sum_assignment(cost)
    pairs = [
        (track_idx[r], det_idx[c]) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou
    ]
    used_t = {t for t, _ in pairs}
    used_d = {d for _, d in pairs}
    return (
        pairs,
        [t for t in track_idx if t not in used_t],
        [d for d in det_idx if d not in used_d],
    )
