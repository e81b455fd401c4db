"""Re-association after an occlusion: a lost track takes back the person who reappears.

The tracker's other stages match a lost track where its motion model
predicts it. That fails exactly when it matters for counting: a walker
hidden behind someone standing on a line, or two people passing each other,
are seen as one box or half boxes for a while; the filter's velocity picks up
those half boxes (a head box drifts up, a merged box jumps sideways), and the
prediction wanders off. When the person reappears a second later, nothing is
near the prediction, so a new track is born on the far side of the line and
the crossing is lost, while the old track coasts on as a phantom. With frames
sparse (a Pi analysing every 3rd or 5th frame) this happens several times per
video.

So before a detection may start a new track, it is offered to the lost
tracks by where each was last *seen*, not where it is predicted: a person
cannot have walked further than ``speed`` box heights per second since
(about 1.7 m per box height: 1.0 is a brisk 1.7 m/s) plus a ``margin``, and
a person's box does not change its height by more than ``size`` times while
hidden. Among the pairs inside those limits the nearest win (optimal
assignment on distance over reach). The numbers were chosen with
bench/accuracy.py on vtest: at every 3rd frame the path line went from 13 to
all 14 crossings and at every 5th frame the middle line from 28 to 31 of 32,
occupancy about unchanged (MAE over both halves 0.38 → 0.39 at stride 3,
0.49 → 0.47 at full rate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

Array = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Reach:
    """How far a hidden person can have gone; 0 speed switches revival off."""

    speed: float = 1.0
    """Box heights per second a hidden person may have walked."""
    margin: float = 0.4
    """Box heights added to that: box jitter and a person half seen when lost."""
    size: float = 1.5
    """Largest ratio between the last seen and the new box height."""

    def __post_init__(self) -> None:
        if self.speed < 0 or self.margin < 0 or self.size < 1:
            raise ValueError("need speed >= 0, margin >= 0 and size >= 1")


def revive(seen_feet: Array, seen_heights: Array, lost_s: Array,
           boxes: Array, reach: Reach) -> list[tuple[int, int]]:
    """Pairs (lost track row, box row) of tracks that take back a box.

    ``seen_feet`` (T, 2) and ``seen_heights`` (T,) are where each lost track
    was last seen and how tall its box was, ``lost_s`` (T,) how long ago;
    ``boxes`` (D, ≥4) the detections no other stage took.
    """
    if reach.speed == 0 or len(seen_feet) == 0 or len(boxes) == 0:
        return []
    feet = np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]])
    heights = boxes[:, 3] - boxes[:, 1]
    tall = np.maximum(heights[None, :], seen_heights[:, None])
    limit = (reach.speed * lost_s[:, None] + reach.margin) * tall
    distance = np.hypot(feet[None, :, 0] - seen_feet[:, None, 0],
                        feet[None, :, 1] - seen_feet[:, None, 1])
    ratio = heights[None, :] / np.maximum(seen_heights[:, None], 1e-9)
    ok = (distance <= limit) & (ratio <= reach.size) & (ratio >= 1 / reach.size)
    if not ok.any():
        return []
    cost = np.where(ok, distance / np.maximum(limit, 1e-9), 1e9)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if ok[r, c]]
