"""Plane geometry in frame pixels for the tracker and the counters.

Conventions, stated once for all of ``agent.vision``:

* Coordinates are image pixels: x to the right, **y downwards**, origin at the
  top-left corner of the frame.
* A box is ``(x1, y1, x2, y2)`` with x1 < x2 and y1 < y2.
* A person's reference point is the **foot point**: the bottom-centre of the
  box, ``((x1 + x2) / 2, y2)``. It lies on the ground plane, so it is the point
  that lines drawn on the street and zones drawn on the pavement are about.
* "Right of the line A→B" means on the right-hand side of someone walking
  from A to B *as the frame is shown on screen*. Because y points down, that
  is where the cross product (B − A) × (P − A) is positive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

Point = tuple[float, float]
"""An (x, y) position in frame pixels."""

_EPS = 1e-12


def foot_point(x1: float, y1: float, x2: float, y2: float) -> Point:
    """Bottom-centre of a box: where the person stands on the ground."""
    del y1  # the top edge does not matter; named for a readable call site
    return ((x1 + x2) / 2.0, y2)


def foot_points(boxes: ArrayLike) -> NDArray[np.float64]:
    """Foot points of an (N, 4) array of boxes as an (N, 2) array."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) / 2.0, b[:, 3]], axis=1)


def signed_distance(points: ArrayLike, start: Point, end: Point) -> NDArray[np.float64]:
    """Signed perpendicular distance (px) of points to the infinite line start→end.

    Positive on the right of start→end as seen on screen (see module
    docstring), negative on the left, zero on the line. Reversing the line
    direction flips the sign. Takes one (x, y) or an (N, 2) array.
    """
    p = np.asarray(points, dtype=np.float64)
    ax, ay = start
    dx, dy = end[0] - ax, end[1] - ay
    length = np.hypot(dx, dy)
    if length < _EPS:
        raise ValueError("a line needs two distinct end points")
    return np.asarray((dx * (p[..., 1] - ay) - dy * (p[..., 0] - ax)) / length)


def projection(points: ArrayLike, start: Point, end: Point) -> NDArray[np.float64]:
    """Position of each point's projection along the segment: 0 at start, 1 at end."""
    p = np.asarray(points, dtype=np.float64)
    ax, ay = start
    dx, dy = end[0] - ax, end[1] - ay
    length_sq = dx * dx + dy * dy
    if length_sq < _EPS:
        raise ValueError("a line needs two distinct end points")
    return np.asarray((dx * (p[..., 0] - ax) + dy * (p[..., 1] - ay)) / length_sq)


def points_in_polygon(points: ArrayLike, polygon: Sequence[Point]) -> NDArray[np.bool_]:
    """Which points lie inside a simple polygon (convex or concave).

    Even-odd rule by casting a ray towards +x and counting edge crossings,
    vectorised over points and edges. Each edge is half-open in y (it owns its
    lower end point in y, not its upper one), so a ray through a vertex is
    counted once. Points exactly on an edge may fall either way; a person
    standing on a zone border is a coin toss whatever the rule, so no attempt
    is made to decide it consistently.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, dtype=np.float64)
    if poly.ndim != 2 or poly.shape[0] < 3 or poly.shape[1] != 2:
        raise ValueError("a polygon needs at least three (x, y) vertices")
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    px, py = p[:, 0:1], p[:, 1:2]  # (N, 1) against (E,) edges
    straddles = (y0 > py) != (y1 > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
    hits = straddles & (px < x_cross)
    return np.asarray(np.count_nonzero(hits, axis=1) % 2 == 1)


def polygon_area(polygon: Sequence[Point]) -> float:
    """Area (px²) of a simple polygon by the shoelace formula, either orientation."""
    poly = np.asarray(polygon, dtype=np.float64)
    x, y = poly[:, 0], poly[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def iou_matrix(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0.0, None) * np.clip(iy2 - iy1, 0.0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.asarray(np.where(union > _EPS, inter / np.maximum(union, _EPS), 0.0))
