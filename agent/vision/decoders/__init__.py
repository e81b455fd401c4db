"""Output decoders: what a model family's raw tensors mean, and what input it wants.

A detector model is more than its ONNX file: the same weights give nonsense
when the frame is normalised the wrong way or when the output tensors are
read with another family's layout. A *decoder* carries both halves for one
family of models:

* ``input_spec``: how the input tensor is built (channel order, mean and
  standard deviation, letterbox padding), consumed by ``agent.vision.preprocess``;
* ``decode()``: raw output tensors -> candidate boxes of one class, in the
  pixel coordinates of the model input, before non-maximum suppression.

Adding a model family is adding one module here with a class registered
under a name with ``@register("name")``; the config names it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class InputSpec:
    """How a model family wants a BGR uint8 frame turned into its NCHW float32 input.

    The tensor is ``(pixel - mean) / std`` per channel, computed on the 0..255
    scale after the frame is resized (and letterboxed) to the input size.
    """

    rgb: bool
    """Channel order of the tensor: True for RGB, False for BGR (OpenCV's order)."""
    mean: tuple[float, float, float]
    """Subtracted per channel, in the tensor's channel order, on the 0..255 scale."""
    std: tuple[float, float, float]
    """Divides each channel after the mean is subtracted."""
    pad_value: int = 0
    """Grey level (0..255, before normalisation) of the letterbox border."""
    keep_ratio: bool = True
    """Letterbox (scale to fit, centre, pad) if True; stretch to the input size if False."""

    def __post_init__(self) -> None:
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("mean and std need three values, std all positive")
        if not 0 <= self.pad_value <= 255:
            raise ValueError("pad_value is a grey level 0..255")


class Decoder(Protocol):
    """Turns one model family's raw outputs into candidate boxes of one class."""

    @property
    def input_spec(self) -> InputSpec:
        """The preprocessing the family was trained with."""
        ...

    def decode(
        self,
        outputs: Sequence[FloatArray],
        input_size: tuple[int, int],
        class_id: int,
        score_threshold: float,
    ) -> FloatArray:
        """Candidate boxes of ``class_id`` scoring at least ``score_threshold``.

        ``outputs`` are the session's outputs in the model's order,
        ``input_size`` is the model input as (width, height). Returns an
        (N, 5) float32 array of x1, y1, x2, y2, score in input pixels, not
        clipped and not suppressed. Raises ValueError when the tensors do not
        have the family's layout, saying which shapes it saw.
        """
        ...


_REGISTRY: dict[str, Callable[[], Decoder]] = {}

D = TypeVar("D", bound=Callable[[], Decoder])


def register(*names: str) -> Callable[[D], D]:
    """Class decorator: make a decoder available under one or more config names."""

    def wrap(factory: D) -> D:
        for name in names:
            if name in _REGISTRY:
                raise ValueError(f"decoder {name!r} registered twice")
            _REGISTRY[name] = factory
        return factory

    return wrap


def decoder_names() -> tuple[str, ...]:
    """Every registered decoder name, sorted."""
    return tuple(sorted(_REGISTRY))


def get_decoder(name: str) -> Decoder:
    """A decoder with its default settings; KeyError listing the known names if unknown."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown decoder {name!r}; known: {', '.join(decoder_names())}") from None
    return factory()


def squeeze_batch(tensor: NDArray[np.floating], name: str) -> FloatArray:
    """Drop a leading batch dimension of 1 and check the result is 2-D."""
    array = np.asarray(tensor, dtype=np.float32)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a [1, rows, cols] tensor, got shape {tensor.shape}")
    return array


# Import the built-in families last so that they can use ``register``.
from agent.vision.decoders import centernet, nanodet, yolo  # noqa: E402

__all__ = [
    "Decoder",
    "InputSpec",
    "centernet",
    "decoder_names",
    "get_decoder",
    "nanodet",
    "register",
    "squeeze_batch",
    "yolo",
]
