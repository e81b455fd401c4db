"""NanoDet (RangiLyu/nanodet, v0.x GFL head): per-stride class scores and distance bins.

Output layout, per stride s in (8, 16, 32) on a grid of ceil(H/s) x ceil(W/s)
cells numbered row-major (cell i is row i // grid_w, column i % grid_w):

* class scores ``[1, cells, classes]``, already through a sigmoid;
* box regression ``[1, cells, 4 * (reg_max + 1)]``: for the left, top, right
  and bottom side in that order, ``reg_max + 1`` logits of a discrete
  distribution over distances 0..reg_max (Generalized Focal Loss). The
  distance is the softmax expectation times the stride, measured from the
  cell's centre ``((col + 0.5) * s, (row + 0.5) * s)`` in input pixels.

Official NanoDet ONNX exports concatenate everything into one
``[1, all cells, classes + 4 * (reg_max + 1)]`` tensor (strides in order);
that layout is read too. Tensors are matched by shape, never by name:
converters give them meaningless names.

The default model (``models/README.md``) is NanoDet-g 416 with reg_max 10,
so 11 bins per side. NanoDet-m and NanoDet-Plus use reg_max 7, and NanoDet-Plus
measures from the cell's corner (``center_offset=0``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from agent.vision.decoders import FloatArray, InputSpec, register, squeeze_batch

NANODET_INPUT = InputSpec(
    rgb=False,
    mean=(103.53, 116.28, 123.675),
    std=(57.375, 57.12, 58.395),
    pad_value=0,
    keep_ratio=True,
)
"""NanoDet's ``normalize`` in every COCO config: BGR, ImageNet statistics in
BGR order, letterbox centred (``keep_ratio: True``) with a black border."""


@dataclass(frozen=True, slots=True)
class _Level:
    stride: int
    grid_w: int
    scores: FloatArray  # (cells, classes)
    regression: FloatArray  # (cells, 4 * bins)


@register("nanodet")
@dataclass(frozen=True, slots=True)
class NanoDetDecoder:
    """Decoder for NanoDet v0.x heads (NanoDet-m, NanoDet-g, EfficientNet-Lite)."""

    strides: tuple[int, ...] = (8, 16, 32)
    reg_max: int = 10
    """Largest distance bin; there are reg_max + 1 bins per side."""
    center_offset: float = 0.5
    """Where in its cell a prediction is anchored, in cells: 0.5 is the centre (v0.x)."""
    input_spec: InputSpec = field(default=NANODET_INPUT)

    @property
    def bins(self) -> int:
        """Distance bins per box side."""
        return self.reg_max + 1

    def decode(
        self,
        outputs: Sequence[FloatArray],
        input_size: tuple[int, int],
        class_id: int,
        score_threshold: float,
    ) -> FloatArray:
        """Boxes of ``class_id`` in input pixels; see ``Decoder.decode``."""
        found: list[FloatArray] = []
        for level in self._levels(outputs, input_size):
            if not 0 <= class_id < level.scores.shape[1]:
                raise ValueError(f"class {class_id} not among {level.scores.shape[1]} classes")
            scores = level.scores[:, class_id]
            cells = np.flatnonzero(scores >= score_threshold)
            if cells.size == 0:
                continue
            distances = expected_distances(level.regression[cells], self.bins) * level.stride
            cx = (cells % level.grid_w + self.center_offset) * level.stride
            cy = (cells // level.grid_w + self.center_offset) * level.stride
            boxes = np.stack(
                [
                    cx - distances[:, 0],
                    cy - distances[:, 1],
                    cx + distances[:, 2],
                    cy + distances[:, 3],
                    scores[cells],
                ],
                axis=1,
            )
            found.append(boxes.astype(np.float32))
        if not found:
            return np.zeros((0, 5), dtype=np.float32)
        return np.concatenate(found)

    def _levels(self, outputs: Sequence[FloatArray], input_size: tuple[int, int]) -> list[_Level]:
        """Pair each stride with its score and regression tensors, by shape."""
        width, height = input_size
        grids = [(math.ceil(width / s), math.ceil(height / s)) for s in self.strides]
        arrays = [squeeze_batch(t, f"nanodet output {i}") for i, t in enumerate(outputs)]
        reg_width = 4 * self.bins
        shapes = [a.shape for a in arrays]
        if len(arrays) == 1:
            merged = arrays[0]
            total = sum(gw * gh for gw, gh in grids)
            if merged.shape[0] != total or merged.shape[1] <= reg_width:
                raise ValueError(
                    f"nanodet: one output of shape {merged.shape}, expected [{total}, "
                    f"classes + {reg_width}] for input {width}x{height}"
                )
            levels, start = [], 0
            for stride, (gw, gh) in zip(self.strides, grids, strict=True):
                rows = merged[start : start + gw * gh]
                start += gw * gh
                levels.append(_Level(stride, gw, rows[:, :-reg_width], rows[:, -reg_width:]))
            return levels
        levels = []
        for stride, (gw, gh) in zip(self.strides, grids, strict=True):
            same = [a for a in arrays if a.shape[0] == gw * gh]
            regression = [a for a in same if a.shape[1] == reg_width]
            scores = [a for a in same if a.shape[1] != reg_width]
            if len(regression) != 1 or len(scores) != 1:
                raise ValueError(
                    f"nanodet: for stride {stride} expected [{gw * gh}, classes] and "
                    f"[{gw * gh}, {reg_width}] among output shapes {shapes}"
                )
            levels.append(_Level(stride, gw, scores[0], regression[0]))
        return levels


def expected_distances(logits: FloatArray, bins: int) -> FloatArray:
    """Softmax expectation over distance bins: (N, 4 * bins) logits -> (N, 4) in bins.

    Generalized Focal Loss models each side's distance as a discrete
    distribution over 0..bins-1; its mean is the prediction.
    """
    x = logits.reshape(-1, 4, bins).astype(np.float32)
    x = np.exp(x - x.max(axis=2, keepdims=True))
    x /= x.sum(axis=2, keepdims=True)
    return np.asarray(x @ np.arange(bins, dtype=np.float32), dtype=np.float32)
