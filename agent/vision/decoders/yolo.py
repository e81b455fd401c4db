"""Ultralytics YOLOv8 / YOLO11 detection exports: one ``[1, 4 + classes, candidates]`` tensor.

Rows 0..3 are the box centre x, centre y, width and height in input pixels;
row 4 + k is the score of class k, already through a sigmoid. There is no
objectness row (that was YOLOv5's ``[1, candidates, 5 + classes]``, not
read here) and no NMS inside the model (end-to-end exports such as
YOLOv10's ``[1, 300, 6]`` are not read here either). Some converters emit
the transpose ``[1, candidates, 4 + classes]``; the decoder takes whichever
axis is shorter as the 4 + classes axis unless told.

Ultralytics feeds the network RGB scaled to 0..1, letterboxed and centred
with grey (114) borders; a model exported from it expects the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from agent.vision.decoders import FloatArray, InputSpec, register, squeeze_batch

YOLO_INPUT = InputSpec(
    rgb=True,
    mean=(0.0, 0.0, 0.0),
    std=(255.0, 255.0, 255.0),
    pad_value=114,
    keep_ratio=True,
)
"""Ultralytics' LetterBox + ``/ 255`` in RGB order."""


@register("yolov8", "yolo11")
@dataclass(frozen=True, slots=True)
class YoloDecoder:
    """Decoder for anchor-free Ultralytics heads (YOLOv8, YOLO11)."""

    transposed: bool | None = None
    """True: candidates first; False: 4 + classes first; None: the shorter axis is 4 + classes."""
    input_spec: InputSpec = field(default=YOLO_INPUT)

    def decode(
        self,
        outputs: Sequence[FloatArray],
        input_size: tuple[int, int],
        class_id: int,
        score_threshold: float,
    ) -> FloatArray:
        """Boxes of ``class_id`` in input pixels; see ``Decoder.decode``."""
        del input_size  # boxes are already in input pixels
        if len(outputs) < 1:
            raise ValueError("yolo: the model has no outputs")
        table = squeeze_batch(outputs[0], "yolo output 0")
        candidates_first = (
            table.shape[0] > table.shape[1] if self.transposed is None else self.transposed
        )
        if candidates_first:
            table = table.T
        if table.shape[0] < 5:
            raise ValueError(f"yolo: expected [1, 4 + classes, candidates], got {table.shape}")
        classes = table.shape[0] - 4
        if not 0 <= class_id < classes:
            raise ValueError(f"class {class_id} not among {classes} classes")
        scores = table[4 + class_id]
        keep = np.flatnonzero(scores >= score_threshold)
        cx, cy, w, h = table[:4, keep]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, scores[keep]], axis=1)
        return boxes.astype(np.float32).reshape(-1, 5)
