import math

import pytest

from geometry import centroid, is_convex, perimeter, point_in_polygon, polygon_area

SQUARE = [(0, 0), (2, 0), (2, 2), (0, 2)]
L_SHAPE = [(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)]


def test_area():
    assert polygon_area(SQUARE) == 4
    assert polygon_area(list(reversed(SQUARE))) == 4
    assert polygon_area(L_SHAPE) == 3
    assert polygon_area([(0, 0), (1, 1)]) == 0.0


def test_perimeter():
    assert perimeter(SQUARE) == 8
    assert math.isclose(perimeter([(0, 0), (3, 0), (3, 4)]), 12)


def test_centroid():
    assert centroid(SQUARE) == (1.0, 1.0)
    cx, cy = centroid([(0, 0), (6, 0), (0, 3)])
    assert math.isclose(cx, 2.0) and math.isclose(cy, 1.0)
    with pytest.raises(ValueError):
        centroid([(0, 0), (1, 1), (2, 2)])


def test_is_convex():
    assert is_convex(SQUARE)
    assert is_convex(list(reversed(SQUARE)))
    assert not is_convex(L_SHAPE)
    assert not is_convex([(0, 0), (1, 1)])
    assert is_convex([(0, 0), (1, 0), (2, 0), (2, 2), (0, 2)])


def test_point_in_polygon():
    assert point_in_polygon(1, 1, SQUARE)
    assert not point_in_polygon(3, 1, SQUARE)
    assert point_in_polygon(0.5, 1.5, L_SHAPE)
    assert not point_in_polygon(1.5, 1.5, L_SHAPE)
