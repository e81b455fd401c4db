"""People counting from a camera: detector, tracker, lines and zones.

The stages run inside the counter process and hand back numbers only; no
frame ever leaves it (no image bytes on disk, in logs, on a socket or on
MQTT). The pipeline is

    frame (BGR, uint8) -> Detector.detect -> [Detection] -> tracker -> counters

This package module stays light on purpose: it imports neither OpenCV nor
onnxruntime, so the rest of the agent (and the tracker and counters) can use
``Detection`` without pulling the heavy vision dependencies in. Those are
imported by ``agent.vision.detector`` and ``agent.vision.preprocess``, which
only the counter process loads, and only when a camera is configured.

Coordinates follow ``agent.vision.geometry``: frame pixels, x right, y down,
boxes as (x1, y1, x2, y2) with the edges of the pixel grid at integers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Detection:
    """One person found in one frame.

    The box is in the pixel coordinates of the frame passed to the detector
    (already mapped back from the model's input), clipped to the frame.
    """

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    """The model's confidence for the person class, 0..1."""

    @property
    def foot(self) -> tuple[float, float]:
        """Bottom-centre of the box: where the person stands on the ground."""
        return ((self.x1 + self.x2) / 2.0, self.y2)


__all__ = ["Detection"]
