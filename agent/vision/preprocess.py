"""Frame -> model input tensor, and the exact way back for boxes.

The frame is resized with ``cv2.resize`` (bilinear) and, for letterboxing,
placed at an integer offset in a canvas of the input size filled with the
family's border grey. ``cv2.resize`` maps the frame's extent [0, w] onto
[0, new_w] (pixel centres at half-integers on both sides), so in the
edge-at-integer coordinates that boxes use the forward map is exactly

    x_input = x_frame * new_w / w + left,   y_input = y_frame * new_h / h + top

and ``Letterbox.to_frame`` inverts it with the very same numbers: no
rounding is lost on the way back, whatever the frame size.

Nothing here keeps a frame: the canvas is scratch memory overwritten by the
next frame, and nothing is written anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from agent.vision.decoders import InputSpec

Size = tuple[int, int]
"""(width, height) in pixels."""


@dataclass(frozen=True, slots=True)
class Letterbox:
    """Where the frame sits inside the model input: input = frame * scale + offset."""

    frame_width: int
    frame_height: int
    scale_x: float
    scale_y: float
    offset_x: int
    offset_y: int
    resized_width: int
    resized_height: int

    def to_input(self, boxes: ArrayLike) -> NDArray[np.float64]:
        """(N, 4) boxes in frame pixels -> input pixels."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scale = np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y])
        offset = np.array([self.offset_x, self.offset_y, self.offset_x, self.offset_y])
        return b * scale + offset

    def to_frame(self, boxes: ArrayLike, clip: bool = True) -> NDArray[np.float64]:
        """(N, 4) boxes in input pixels -> frame pixels, clipped to the frame by default."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scale = np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y])
        offset = np.array([self.offset_x, self.offset_y, self.offset_x, self.offset_y])
        out = (b - offset) / scale
        if clip:
            out[:, 0::2] = np.clip(out[:, 0::2], 0.0, self.frame_width)
            out[:, 1::2] = np.clip(out[:, 1::2], 0.0, self.frame_height)
        return out


def letterbox_geometry(frame_size: Size, input_size: Size, keep_ratio: bool) -> Letterbox:
    """Placement of a frame in the input: scaled to fit and centred, or stretched."""
    fw, fh = frame_size
    iw, ih = input_size
    if min(fw, fh, iw, ih) < 1:
        raise ValueError(f"empty frame {frame_size} or input {input_size}")
    if keep_ratio:
        ratio = min(iw / fw, ih / fh)
        rw = min(iw, max(1, round(fw * ratio)))
        rh = min(ih, max(1, round(fh * ratio)))
    else:
        rw, rh = iw, ih
    left, top = (iw - rw) // 2, (ih - rh) // 2
    return Letterbox(fw, fh, rw / fw, rh / fh, left, top, rw, rh)


class Preprocessor:
    """Builds the NCHW float32 input tensor for one model input size and family.

    Holds the canvas, the output tensor and the per-channel constants, so a frame
    costs one resize, one copy and one fused normalisation, and no new 2 MB tensor
    (with the unit's fixed mmap threshold each would be mapped and faulted in afresh,
    docs/operations.md). One instance per thread: canvas and tensor are scratch
    memory, and the tensor returned is valid until the next call.
    """

    def __init__(self, spec: InputSpec, input_size: Size) -> None:
        self.spec = spec
        self.input_size = input_size
        width, height = input_size
        self._canvas = np.full((height, width, 3), spec.pad_value, dtype=np.uint8)
        self._tensor = np.empty((1, 3, height, width), dtype=np.float32)
        self._geometry: Letterbox | None = None
        self._mean = np.asarray(spec.mean, dtype=np.float32).reshape(3, 1, 1)
        self._inv_std = (1.0 / np.asarray(spec.std, dtype=np.float32)).reshape(3, 1, 1)

    def geometry(self, frame_width: int, frame_height: int) -> Letterbox:
        """The placement for frames of this size (cached: a camera keeps its size)."""
        g = self._geometry
        if g is None or (g.frame_width, g.frame_height) != (frame_width, frame_height):
            g = letterbox_geometry((frame_width, frame_height), self.input_size,
                                   self.spec.keep_ratio)
            if self._geometry is not None:
                self._canvas[:] = self.spec.pad_value  # the old image may show in the border
            self._geometry = g
        return g

    def __call__(self, frame_bgr: NDArray[np.uint8]) -> tuple[NDArray[np.float32], Letterbox]:
        """(1, 3, H, W) float32 tensor and the placement to map boxes back."""
        frame = np.asarray(frame_bgr)
        if frame.dtype != np.uint8:
            raise ValueError(f"expected a uint8 frame, got {frame.dtype}")
        if frame.ndim == 2:
            frame = np.asarray(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an H x W x 3 BGR frame, got shape {frame.shape}")
        g = self.geometry(frame.shape[1], frame.shape[0])
        if (g.resized_width, g.resized_height) == (frame.shape[1], frame.shape[0]):
            resized = frame
        else:
            resized = np.asarray(cv2.resize(frame, (g.resized_width, g.resized_height),
                                            interpolation=cv2.INTER_LINEAR), dtype=np.uint8)
        self._canvas[g.offset_y : g.offset_y + g.resized_height,
                     g.offset_x : g.offset_x + g.resized_width] = resized
        chw = self._canvas.transpose(2, 0, 1)
        if self.spec.rgb:
            chw = chw[::-1]
        tensor = self._tensor
        np.subtract(chw, self._mean, out=tensor[0], dtype=np.float32)
        np.multiply(tensor[0], self._inv_std, out=tensor[0])
        return tensor, g
