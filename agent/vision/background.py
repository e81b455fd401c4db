"""A slowly adapting picture of the empty scene, to tell people from street furniture.

The detector half takes some static things for people: traffic cones, a
lectern, a bollard score 0.3–0.5 in frame after frame. The tracker only counts
a track that has *shown* it is a person (``agent.vision.tracker``, rule 10):
a confident detection, or walking. A person standing half hidden behind a
sign shows neither (vtest's man behind the assembly-point sign scores
0.2–0.5 for ten seconds), yet unlike the cone he was not there a while ago,
and he fidgets. This module gives that third kind of evidence: the share of a
detection's box that differs from a running average of past frames.

The average forgets with a time constant of ``time_constant_s`` seconds of
frame time (not frames: a Pi analysing every 3rd frame must see the same
scene), so a cone that stood there from the start, or a parked car, is part
of it, while a person who arrived within the last few tens of seconds is not.
Someone who stands still for much longer fades into it and must show
themselves the other ways again, as before. When much of the frame differs at
once (a camera on a vehicle, one knocked aside, the sun coming out, a
reconnect to a changed view), the average is no picture of the scene and
proves nothing until it has caught up.

Measured on vtest with the bundled model (boxes of confirmed tracks, grey
threshold 25, 10 s): static look-alikes have a foreground share of 0.00–0.02
(10th–90th percentile), the man behind the sign 0.19–0.38, walkers 0.5–0.7.

The average is a small grey thumbnail held in the counter process only, like
the motion gate's reference frame: replaced in place, never stored or sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from agent.vision.motion import thumbnail


@dataclass(frozen=True, slots=True)
class BackgroundSettings:
    """How the background adapts and what counts as different from it."""

    width: int = 384
    """Thumbnail width, px (half of a 768-px frame): fine enough for a 20-px walker."""
    time_constant_s: float = 10.0
    """How fast the average forgets (s): a frame ``t`` seconds old weighs ``e^(-t/τ)``."""
    pixel_threshold: float = 25.0
    """A pixel is foreground when it differs from the average by more (grey levels)."""
    max_changed: float = 0.25
    """When more of the frame than this differs, the average is no picture of the scene
    (the camera moved or was knocked, the sun came out): no box is foreground then."""


class Background:
    """Running average of the scene and the foreground share of boxes (module docstring)."""

    def __init__(self, settings: BackgroundSettings | None = None) -> None:
        self.settings = settings or BackgroundSettings()
        self._average: NDArray[np.float32] | None = None
        self._last_t: float | None = None

    def update(self, image: NDArray[np.uint8], t_s: float,
               boxes: NDArray[np.float64]) -> NDArray[np.float64]:
        """Share of each box that is foreground and no earlier box's, then learn the frame.

        ``boxes`` are rows of x1, y1, x2, y2 in frame pixels, most confident first. A
        box's foreground pixels that an earlier (more confident) box already covers are
        that box's: a cone's box with a walker passing over it stands out only by the
        walker, who has a box of his own. The shares compare the frame with the average
        *before* it learns the frame, so a box is measured against the past only.
        """
        s = self.settings
        grey = thumbnail(image, s.width).astype(np.float32)
        if self._average is None or self._average.shape != grey.shape or self._last_t is None:
            self._average, self._last_t = grey, t_s
            return np.zeros(len(boxes))
        mask = cv2.absdiff(grey, self._average) > s.pixel_threshold
        shares = np.zeros(len(boxes))
        if np.count_nonzero(mask) <= s.max_changed * mask.size:
            scale = grey.shape[1] / image.shape[1]
            for k, box in enumerate(boxes):
                shares[k] = _claim(mask, box * scale)
        dt = max(0.0, t_s - self._last_t)
        cv2.accumulateWeighted(grey, self._average, 1.0 - math.exp(-dt / s.time_constant_s))
        self._last_t = t_s
        return shares


def _claim(mask: NDArray[np.bool_], box: NDArray[np.float64]) -> float:
    """Share of the box that is foreground; those pixels are cleared, claimed by this box."""
    height, width = mask.shape
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(width, math.ceil(box[2])), min(height, math.ceil(box[3]))
    if x2 <= x1 or y2 <= y1:
        return 0.0
    share = float(np.count_nonzero(mask[y1:y2, x1:x2])) / ((x2 - x1) * (y2 - y1))
    mask[y1:y2, x1:x2] = False
    return share
