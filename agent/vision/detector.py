"""On-device person detector: an ONNX model, a family decoder, NMS and ignore regions.

``Detector.detect(frame_bgr)`` runs four steps, each also callable on its own
so that the benchmark can time them:

1. ``preprocess``: letterbox or stretch the frame to the model input and
   normalise it as the model family was trained (``agent.vision.preprocess``);
2. ``infer``: one onnxruntime run on the CPU, sequential execution,
   ``intra_op_threads`` threads (default 2: a Raspberry Pi 4 has four cores
   and the rest of the agent needs some);
3. ``postprocess``: decode the person class above ``score_threshold``, map
   the boxes back to frame pixels and clip them to the frame, drop the ones
   anchored in an ignore region, then non-maximum suppression.

Ignore-region rule: a candidate is dropped when its *foot point* (bottom
centre of the clipped box, where the person stands; the same reference the
tracker and counters use) lies inside any ``roi_ignore`` polygon; with
``roi_anchor="centre"`` the box centre is used instead, for cameras looking
straight down. Dropping happens *before* NMS, so an ignored false positive
(a traffic cone, a poster) can never suppress a real person standing in
front of it.

The default model is NanoDet-g 416 converted from the Human project's TF.js
release (see ``models/README.md``). Frames are only read: this module never
writes, encodes or logs image data.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

# ONNX Runtime otherwise records a device id and usage events under ~/.cache for later
# upload; the variable only counts when set before the import. Nothing about the box
# leaves it except the measurements (docs/privacy.md).
os.environ["ORT_DISABLE_TELEMETRY"] = "1"
import onnxruntime as ort  # after the telemetry opt-out above
from numpy.typing import NDArray

from agent.errors import ConfigError
from agent.vision import Detection
from agent.vision.decoders import Decoder, FloatArray, get_decoder
from agent.vision.geometry import points_in_polygon
from agent.vision.nms import nms
from agent.vision.preprocess import Letterbox, Preprocessor

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "nanodet-g-416.onnx"
"""The bundled model, converted by ``scripts/build-default-model``."""

Polygon = Sequence[tuple[float, float]]
RoiAnchor = Literal["foot", "centre"]


def default_model_path() -> Path:
    """Where the bundled model lives: installed beside the package, or in the checkout."""
    here = Path(__file__).resolve()
    for candidate in (here.parent / "models" / DEFAULT_MODEL_NAME,
                      here.parents[2] / "models" / DEFAULT_MODEL_NAME):
        if candidate.is_file():
            return candidate
    return here.parents[2] / "models" / DEFAULT_MODEL_NAME


class Detector:
    """Finds people in BGR frames with an ONNX model; see the module docstring."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        decoder: str | Decoder = "nanodet",
        *,
        input_size: int | tuple[int, int] | None = None,
        person_class: int = 0,
        score_threshold: float = 0.4,
        nms_iou: float = 0.5,
        roi_ignore: Sequence[Polygon] = (),
        roi_anchor: RoiAnchor = "foot",
        intra_op_threads: int = 2,
        max_detections: int = 100,
    ) -> None:
        """Load the model and check that the decoder understands its outputs.

        ``input_size`` is the model input as one side (square) or (width,
        height); None reads it from the model, which must then have a fixed
        input shape. ``score_threshold`` 0.4 is where the default model's
        misses and false boxes balance on the vtest ground truth (see
        models/README.md). Raises ConfigError for any mismatch, naming the model.
        """
        path = Path(model_path) if model_path is not None else default_model_path()
        source = str(path)
        problems = _check_settings(
            score_threshold=score_threshold, nms_iou=nms_iou, roi_ignore=roi_ignore,
            roi_anchor=roi_anchor, threads=intra_op_threads, max_detections=max_detections,
            person_class=person_class)
        if problems:
            raise ConfigError(source, problems)
        if not path.is_file():
            raise ConfigError(source, [("", "model file not found (scripts/build-default-model "
                                             "builds the default one)")])
        try:
            self.decoder = get_decoder(decoder) if isinstance(decoder, str) else decoder
        except KeyError as exc:
            raise ConfigError(source, [("decoder", str(exc.args[0]))]) from None
        self.model_path = path
        self.person_class = person_class
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.roi_ignore = tuple(tuple((float(x), float(y)) for x, y in p) for p in roi_ignore)
        self.roi_anchor = roi_anchor
        self.max_detections = max_detections
        self.session = _open_session(path, intra_op_threads)
        self.input_name, self.input_size = _input_of(self.session, input_size, source)
        self.preprocessor = Preprocessor(self.decoder.input_spec, self.input_size)
        self._check_outputs(source)
        log.info("detector: %s, decoder %s, input %dx%d, %d thread(s)", path.name,
                 type(self.decoder).__name__, *self.input_size, intra_op_threads)

    def detect(self, frame_bgr: NDArray[np.uint8]) -> list[Detection]:
        """People in one frame, best score first, boxes in frame pixels."""
        tensor, placement = self.preprocess(frame_bgr)
        return self.postprocess(self.infer(tensor), placement)

    def preprocess(self, frame_bgr: NDArray[np.uint8]) -> tuple[NDArray[np.float32], Letterbox]:
        """The model input tensor for a frame, and how to map boxes back."""
        return self.preprocessor(frame_bgr)

    def infer(self, tensor: NDArray[np.float32]) -> list[FloatArray]:
        """Raw model outputs, in the model's output order."""
        return [np.asarray(o) for o in self.session.run(None, {self.input_name: tensor})]

    def postprocess(self, outputs: Sequence[FloatArray], placement: Letterbox) -> list[Detection]:
        """Decode, map back, drop ignored and degenerate boxes, suppress overlaps."""
        raw = self.decoder.decode(outputs, self.input_size, self.person_class,
                                  self.score_threshold)
        boxes = placement.to_frame(raw[:, :4])
        scores = raw[:, 4].astype(np.float64)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        if self.roi_ignore and keep.any():
            keep &= ~self._ignored(boxes)
        boxes, scores = boxes[keep], scores[keep]
        order = nms(boxes, scores, self.nms_iou, self.max_detections)
        return [Detection(float(b[0]), float(b[1]), float(b[2]), float(b[3]), float(s))
                for b, s in zip(boxes[order], scores[order], strict=True)]

    def _ignored(self, boxes: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Which boxes are anchored inside an ignore polygon."""
        cx = (boxes[:, 0] + boxes[:, 2]) / 2.0
        cy = boxes[:, 3] if self.roi_anchor == "foot" else (boxes[:, 1] + boxes[:, 3]) / 2.0
        anchors = np.stack([cx, cy], axis=1)
        hit = np.zeros(len(boxes), dtype=bool)
        for polygon in self.roi_ignore:
            hit |= points_in_polygon(anchors, polygon)
        return hit

    def _check_outputs(self, source: str) -> None:
        """Run a blank frame through model and decoder once, so a mismatch fails at start."""
        width, height = self.input_size
        tensor, _ = self.preprocessor(np.zeros((height, width, 3), dtype=np.uint8))
        try:
            self.decoder.decode(self.infer(tensor), self.input_size, self.person_class, 1.01)
        except ValueError as exc:
            raise ConfigError(source, [("decoder", str(exc))]) from None


def _check_settings(*, score_threshold: float, nms_iou: float, roi_ignore: Sequence[Polygon],
                    roi_anchor: str, threads: int, max_detections: int,
                    person_class: int) -> list[tuple[str, str]]:
    """Every invalid setting at once, as (key, reason) pairs."""
    problems = []
    if not 0.0 <= score_threshold <= 1.0:
        problems.append(("score_threshold", "must be within 0..1"))
    if not 0.0 <= nms_iou <= 1.0:
        problems.append(("nms_iou", "must be within 0..1"))
    if roi_anchor not in ("foot", "centre"):
        problems.append(("roi_anchor", "must be 'foot' or 'centre'"))
    for i, polygon in enumerate(roi_ignore):
        if len(polygon) < 3:
            problems.append((f"roi_ignore[{i}]", "a polygon needs at least three points"))
    if threads < 1:
        problems.append(("intra_op_threads", "must be at least 1"))
    if max_detections < 1:
        problems.append(("max_detections", "must be at least 1"))
    if person_class < 0:
        problems.append(("person_class", "must be a class index >= 0"))
    return problems


def _open_session(path: Path, threads: int) -> ort.InferenceSession:
    """CPU session: fixed thread count, sequential execution, all graph optimisations."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: ORT's warnings name nodes, not problems
    # Idle worker threads would otherwise spin between frames: at 10 fps this halves the
    # counter's CPU (float 90 % -> 51 %, int8 65 % -> 17 %) at the same latency.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ConfigError(str(path), [("", f"onnxruntime cannot load the model: {exc}")]) from exc


def _input_of(session: ort.InferenceSession, requested: int | tuple[int, int] | None,
              source: str) -> tuple[str, tuple[int, int]]:
    """The input's name and (width, height), reconciling the model's shape with the config."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ConfigError(source, [("", f"expected one model input, found {len(inputs)}")])
    shape = list(inputs[0].shape)
    if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
        raise ConfigError(source, [("", f"expected an NCHW input with 3 channels, got {shape}")])
    height, width = shape[2:]
    model_size = (width, height) if isinstance(width, int) and isinstance(height, int) \
        else None
    if isinstance(requested, int):
        requested = (requested, requested)
    if requested is None:
        if model_size is None:
            raise ConfigError(source, [("input_size", "the model's input size is dynamic; "
                                                      "set input_size")])
        return inputs[0].name, model_size
    if model_size is not None and tuple(requested) != model_size:
        raise ConfigError(source, [("input_size", f"{requested} does not match the model's "
                                                  f"fixed input {model_size}")])
    return inputs[0].name, (int(requested[0]), int(requested[1]))
