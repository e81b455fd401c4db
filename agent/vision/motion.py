"""Motion gating: run the detector only when the picture has changed.

At night, or on an empty square, most frames equal the one before, and the
detector (by far the most expensive stage) would only find the same nothing
again. The gate compares a small grey thumbnail of each frame with the
thumbnail of the **last frame the detector analysed** (not the previous
frame: slow movement then still adds up until it shows) and lets a frame
through when at least ``min_changed_fraction`` of the thumbnail's pixels
differ by more than ``pixel_threshold`` grey levels. While frames are held
back the previous result stands: nothing moved, so nobody crossed a line and
the occupancy is what it was. Every ``max_skip_s`` one frame goes through
anyway, so a slow drift (dusk, a shadow) can never freeze the counts.

The thumbnail is made by area averaging, which also averages away most
sensor noise; it is scratch memory, replaced at the next analysed frame and
never stored or sent anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class MotionSettings:
    """How sensitive the gate is (the config's ``[cameras.<id>.motion]``)."""

    width: int = 160
    """Thumbnail width, px; the height follows the frame's aspect ratio."""
    pixel_threshold: int = 20
    """A thumbnail pixel has changed when it differs by more than this (grey levels)."""
    min_changed_fraction: float = 0.002
    """The frame has changed when at least this fraction of pixels changed."""
    max_skip_s: float = 5.0
    """Let a frame through at least this often (s) regardless."""

    def __post_init__(self) -> None:
        if self.width < 8 or not 0 < self.pixel_threshold < 256:
            raise ValueError("need width >= 8 and 0 < pixel_threshold < 256")
        if not 0 < self.min_changed_fraction <= 1 or self.max_skip_s <= 0:
            raise ValueError("need 0 < min_changed_fraction <= 1 and max_skip_s > 0")


def thumbnail(image: NDArray[np.uint8], width: int) -> NDArray[np.uint8]:
    """A small grey copy of a BGR (or grey) frame, by area averaging."""
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    if small.ndim == 3:
        small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    return np.asarray(small, dtype=np.uint8)


def changed_fraction(a: NDArray[np.uint8], b: NDArray[np.uint8], threshold: int) -> float:
    """Fraction of pixels whose grey levels differ by more than ``threshold``."""
    if a.shape != b.shape:
        return 1.0
    return float(np.count_nonzero(cv2.absdiff(a, b) > threshold)) / a.size


class MotionGate:
    """Decides frame by frame whether the detector needs to run (module docstring)."""

    def __init__(self, settings: MotionSettings | None = None) -> None:
        self.settings = settings or MotionSettings()
        self._reference: NDArray[np.uint8] | None = None
        self._last_pass_s = 0.0
        self.passed = 0
        """Frames let through to the detector."""
        self.held = 0
        """Frames held back because nothing changed."""

    def check(self, image: NDArray[np.uint8], t_s: float) -> bool:
        """True when the detector should analyse this frame (taken at ``t_s`` seconds)."""
        s = self.settings
        thumb = thumbnail(image, s.width)
        if (
            self._reference is not None
            and t_s - self._last_pass_s < s.max_skip_s
            and changed_fraction(self._reference, thumb, s.pixel_threshold)
            < s.min_changed_fraction
        ):
            self.held += 1
            return False
        self._reference, self._last_pass_s = thumb, t_s
        self.passed += 1
        return True

    def reset(self) -> None:
        """Forget the reference, so the next frame passes (after a source reconnect)."""
        self._reference = None
