"""Geometry invariants: side of line, projection, point in polygon, area, IoU."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agent.vision.geometry import (
    foot_point,
    foot_points,
    iou_matrix,
    points_in_polygon,
    polygon_area,
    projection,
    signed_distance,
)

coord = st.floats(min_value=-2000, max_value=2000, allow_nan=False)
point = st.tuples(coord, coord)


def test_right_of_the_line_is_as_seen_on_screen():
    # Line pointing right on screen: "right" of a walker along it is down the screen.
    assert signed_distance((100, 150), (0, 100), (200, 100)) == pytest.approx(50.0)
    assert signed_distance((100, 40), (0, 100), (200, 100)) == pytest.approx(-60.0)
    # Line pointing down the screen: a walker along it faces the viewer, so
    # their right hand is on the screen's left.
    assert signed_distance((50, 100), (100, 0), (100, 200)) == pytest.approx(50.0)


@given(point, point, point)
def test_reversing_the_line_flips_the_side(p, a, b):
    assume(math.dist(a, b) > 1e-3)
    forward = float(signed_distance(p, a, b))
    backward = float(signed_distance(p, b, a))
    assert backward == pytest.approx(-forward, abs=1e-6)
    assert float(projection(p, b, a)) == pytest.approx(1 - float(projection(p, a, b)), abs=1e-6)


@given(point, point, st.floats(min_value=-3, max_value=3), st.floats(-500, 500), point)
def test_distance_and_projection_of_constructed_points(a, b, u, offset, shift):
    length = math.dist(a, b)
    assume(length > 1.0)
    ux, uy = (b[0] - a[0]) / length, (b[1] - a[1]) / length
    # Along the line by u, then sideways by offset to the screen-right (−uy, ux).
    p = (a[0] + u * (b[0] - a[0]) - offset * uy, a[1] + u * (b[1] - a[1]) + offset * ux)
    assert float(signed_distance(p, a, b)) == pytest.approx(offset, abs=1e-6 * (1 + length))
    assert float(projection(p, a, b)) == pytest.approx(u, abs=1e-9 * (1 + length))
    # Translating everything changes nothing.
    moved = [(q[0] + shift[0], q[1] + shift[1]) for q in (p, a, b)]
    assert float(signed_distance(*moved)) == pytest.approx(offset, abs=1e-5 * (1 + length))


def test_degenerate_lines_are_refused():
    with pytest.raises(ValueError):
        signed_distance((1, 1), (5, 5), (5, 5))
    with pytest.raises(ValueError):
        projection((1, 1), (5, 5), (5, 5))


def star_polygon(centre, radii, rotation):
    """A star-shaped polygon around ``centre``; concave unless the radii are equal."""
    n = len(radii)
    angles = rotation + 2 * np.pi * np.arange(n) / n
    return [
        (centre[0] + r * np.cos(t), centre[1] + r * np.sin(t))
        for r, t in zip(radii, angles, strict=True)
    ]


def star_oracle(p, centre, radii, rotation):
    """Inside test for a star-shaped polygon by the boundary radius along p's bearing."""
    n = len(radii)
    dx, dy = p[0] - centre[0], p[1] - centre[1]
    theta = (math.atan2(dy, dx) - rotation) % (2 * math.pi)
    k = int(theta // (2 * math.pi / n)) % n
    v0 = np.array(star_polygon((0, 0), radii, rotation)[k])
    v1 = np.array(star_polygon((0, 0), radii, rotation)[(k + 1) % n])
    # Solve s·(cos, sin) = v0 + w·(v1 − v0) for the boundary distance s.
    d = np.array([math.cos(theta + rotation), math.sin(theta + rotation)])
    m = np.column_stack([d, v0 - v1])
    s, _ = np.linalg.solve(m, v0)
    return math.hypot(dx, dy), s


@settings(max_examples=150, deadline=None)
@given(
    point,
    st.lists(st.floats(min_value=10, max_value=300), min_size=3, max_size=12),
    st.floats(min_value=0, max_value=2 * math.pi),
    st.lists(st.tuples(st.floats(-1, 1), st.floats(-1, 1)), min_size=1, max_size=30),
    st.integers(0, 11),
)
def test_point_in_star_polygons_matches_an_independent_oracle(centre, radii, rot, rel, shift):
    polygon = star_polygon(centre, radii, rot)
    scale = 1.3 * max(radii)
    points = [(centre[0] + x * scale, centre[1] + y * scale) for x, y in rel]
    expected, keep = [], []
    for p in points:
        r, boundary = star_oracle(p, centre, radii, rot)
        keep.append(abs(r - boundary) > 1e-6 * scale)  # a point on the border may go either way
        expected.append(r < boundary)
    got = points_in_polygon(points, polygon)
    assert list(got[keep]) == list(np.array(expected)[keep])
    # Vertex order (either orientation, any starting vertex) does not matter.
    rolled = polygon[shift % len(polygon) :] + polygon[: shift % len(polygon)]
    assert list(points_in_polygon(points, rolled[::-1])[keep]) == list(got[keep])


@settings(max_examples=100, deadline=None)
@given(
    point,
    st.floats(min_value=5, max_value=500),
    st.integers(3, 10),
    st.floats(min_value=0, max_value=2 * math.pi),
    st.lists(st.lists(st.floats(0.01, 1), min_size=3, max_size=3), min_size=1, max_size=20),
)
def test_convex_polygons_contain_interior_points_and_not_outer_ones(centre, r, n, rot, weights):
    polygon = star_polygon(centre, [r] * n, rot)
    inner = []
    for k, (w0, w1, w2) in enumerate(weights):
        # A strict convex combination of the centre and two neighbouring vertices.
        a, b = polygon[k % n], polygon[(k + 1) % n]
        s = w0 + w1 + w2
        inner.append(tuple((w0 * centre[i] + w1 * a[i] + w2 * b[i]) / s for i in range(2)))
    assert points_in_polygon(inner, polygon).all()
    outer = [
        (centre[0] + 1.01 * r * math.cos(t), centre[1] + 1.01 * r * math.sin(t))
        for t in rot + np.arange(7)
    ]
    assert not points_in_polygon(outer, polygon).any()


def test_concave_l_shape():
    l_shape = [(0, 0), (100, 0), (100, 40), (40, 40), (40, 100), (0, 100)]
    points = [(20, 20), (80, 20), (20, 80), (80, 80), (70, 70), (120, 20), (-5, 50)]
    assert list(points_in_polygon(points, l_shape)) == [
        True,
        True,
        True,
        False,
        False,
        False,
        False,
    ]
    # A ray through a vertex is counted once (the reflex vertex at (40, 40)).
    assert list(points_in_polygon([(10, 40), (60, 40.0001)], l_shape)) == [True, False]
    assert points_in_polygon(np.zeros((0, 2)), l_shape).shape == (0,)
    with pytest.raises(ValueError):
        points_in_polygon([(0, 0)], [(0, 0), (1, 1)])


def test_polygon_area_either_orientation():
    square = [(0, 0), (10, 0), (10, 10), (0, 10)]
    assert polygon_area(square) == 100.0
    assert polygon_area(square[::-1]) == 100.0
    assert polygon_area([(0, 0), (100, 0), (100, 40), (40, 40), (40, 100), (0, 100)]) == 6400.0


def test_foot_point_is_the_bottom_centre():
    assert foot_point(10, 20, 50, 140) == (30.0, 140)
    np.testing.assert_allclose(foot_points([[10, 20, 50, 140], [0, 0, 4, 8]]), [[30, 140], [2, 8]])


box = st.tuples(coord, coord, st.floats(1, 500), st.floats(1, 500)).map(
    lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3])
)


@given(st.lists(box, min_size=1, max_size=6), st.lists(box, min_size=1, max_size=6))
def test_iou_is_symmetric_bounded_and_one_on_itself(a, b):
    m = iou_matrix(a, b)
    assert m.shape == (len(a), len(b))
    assert np.all((m >= 0) & (m <= 1 + 1e-12))
    np.testing.assert_allclose(m, iou_matrix(b, a).T)
    np.testing.assert_allclose(np.diag(iou_matrix(a, a)), 1.0)


def test_iou_known_values():
    assert iou_matrix([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0, 0] == pytest.approx(50 / 150)
    assert iou_matrix([[0, 0, 10, 10]], [[20, 20, 30, 30]])[0, 0] == 0.0
    assert iou_matrix(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
