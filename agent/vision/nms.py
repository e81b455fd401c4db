"""Greedy non-maximum suppression for one class.

A detector fires on several neighbouring cells for one person; NMS keeps the
best-scoring box and drops every other box overlapping it by more than the
IoU threshold, then repeats with the best remaining box. Plain numpy: with
the tens of candidates a street scene gives, this costs well under a
millisecond and needs no OpenCV.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def nms(
    boxes: ArrayLike,
    scores: ArrayLike,
    iou_threshold: float,
    max_detections: int | None = None,
) -> NDArray[np.intp]:
    """Indices of the boxes kept, best score first.

    ``boxes`` is (N, 4) x1, y1, x2, y2; ``scores`` is (N,). A box is dropped
    when its IoU with an already kept box is *greater than* ``iou_threshold``
    (so 0.5 keeps two boxes overlapping exactly half). Equal scores keep the
    earlier box first, so the result does not depend on sort stability
    across numpy versions. ``max_detections`` caps the number kept.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if b.shape[0] != s.shape[0]:
        raise ValueError(f"{b.shape[0]} boxes but {s.shape[0]} scores")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError("iou_threshold must be within 0..1")
    limit = b.shape[0] if max_detections is None else max_detections
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    order = np.lexsort((np.arange(s.size), -s))
    kept: list[int] = []
    while order.size and len(kept) < limit:
        best, rest = order[0], order[1:]
        kept.append(int(best))
        lo = np.maximum(b[best, :2], b[rest, :2])
        hi = np.minimum(b[best, 2:], b[rest, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
        union = area[best] + area[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= iou_threshold]
    return np.asarray(kept, dtype=np.intp)
