"""CenterNet ("Objects as Points") with per-pixel box sides: a heatmap and a distance map.

Output layout, two tensors on one grid of H x W cells (stride s = input
width / W = height / H, 4 for the model in ``models/README.md``), channels last:

* heatmap ``[1, H, W, classes]``: the probability that an object of that
  class is *anchored* at the cell, already through a sigmoid;
* box sides ``[1, H, W, 4]``: distances left, top, right, bottom from the
  anchor point ``(col * s, row * s)`` to the box edges, in input pixels.

An object is a local maximum of its class channel: a cell counts only when
no cell of its 3 x 3 neighbourhood scores higher, CenterNet's replacement
for box suppression (the detector's NMS still runs after this, as for every
family). The anchor is the cell's corner, not its centre: the distances are
asymmetric and were trained from ``col * s``, so a centre offset would shift
every box by half a cell.

The two tensors are told apart by their channel count (4 for the sides), so
a model with exactly four classes is ambiguous and rejected. Converters give
outputs meaningless names; nothing here reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from agent.vision.decoders import FloatArray, InputSpec, register

CENTERNET_INPUT = InputSpec(
    rgb=True,
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
    pad_value=0,
    keep_ratio=True,
)
"""RGB on the 0..255 scale, letterboxed with black: the mobilenetv3_centernet
training pipeline divides by 255 inside the graph (folded into the first
convolution in the converted model) and pads with zeros to keep the aspect."""


@register("centernet")
@dataclass(frozen=True, slots=True)
class CenterNetDecoder:
    """Decoder for CenterNet heads with a sigmoid heatmap and four side distances."""

    input_spec: InputSpec = field(default=CENTERNET_INPUT)

    def decode(
        self,
        outputs: Sequence[FloatArray],
        input_size: tuple[int, int],
        class_id: int,
        score_threshold: float,
    ) -> FloatArray:
        """Boxes of ``class_id`` in input pixels; see ``Decoder.decode``."""
        heatmap, sides = _split(outputs)
        if not 0 <= class_id < heatmap.shape[2]:
            raise ValueError(f"class {class_id} not among {heatmap.shape[2]} classes")
        stride_x = input_size[0] / heatmap.shape[1]
        stride_y = input_size[1] / heatmap.shape[0]
        scores = heatmap[:, :, class_id]
        rows, cols = np.nonzero((scores >= score_threshold) & (scores >= local_max(scores)))
        d = sides[rows, cols]
        x, y = cols * stride_x, rows * stride_y
        boxes = np.stack(
            [x - d[:, 0], y - d[:, 1], x + d[:, 2], y + d[:, 3], scores[rows, cols]], axis=1
        )
        return boxes.astype(np.float32).reshape(-1, 5)


def local_max(scores: FloatArray) -> FloatArray:
    """Each cell's 3 x 3 neighbourhood maximum (a max-pool with stride 1, 'same' size)."""
    padded = np.pad(scores, 1, constant_values=-np.inf)
    h, w = scores.shape
    windows = np.stack([padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)])
    return np.asarray(windows.max(axis=0), dtype=np.float32)


def _split(outputs: Sequence[FloatArray]) -> tuple[FloatArray, FloatArray]:
    """The heatmap and the side distances, by shape, batch dimension dropped."""
    arrays = [np.asarray(o, dtype=np.float32) for o in outputs]
    shapes = [a.shape for a in arrays]
    if len(arrays) != 2 or any(a.ndim != 4 or a.shape[0] != 1 for a in arrays):
        raise ValueError(f"centernet: expected two [1, H, W, C] outputs, got {shapes}")
    sides = [a[0] for a in arrays if a.shape[3] == 4]
    heatmaps = [a[0] for a in arrays if a.shape[3] != 4]
    if len(sides) != 1 or len(heatmaps) != 1 or sides[0].shape[:2] != heatmaps[0].shape[:2]:
        raise ValueError(
            f"centernet: expected [1, H, W, classes] and [1, H, W, 4] on one grid, got {shapes}"
        )
    return heatmaps[0], sides[0]
