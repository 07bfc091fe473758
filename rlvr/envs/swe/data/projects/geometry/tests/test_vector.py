import math

import pytest

from geometry import Vector


def test_arithmetic():
    assert Vector(1, 2) + Vector(3, 4) == Vector(4, 6)
    assert Vector(1, 2) - Vector(3, 5) == Vector(-2, -3)
    assert Vector(1, -2) * 3 == Vector(3, -6)


def test_dot_and_cross():
    assert Vector(1, 2).dot(Vector(3, 4)) == 11
    assert Vector(1, 0).cross(Vector(0, 1)) == 1
    assert Vector(0, 1).cross(Vector(1, 0)) == -1


def test_length_and_normalized():
    assert Vector(3, 4).length() == 5
    n = Vector(3, 4).normalized()
    assert math.isclose(n.x, 0.6) and math.isclose(n.y, 0.8)
    with pytest.raises(ValueError):
        Vector(0, 0).normalized()


def test_angle_to():
    assert math.isclose(Vector(1, 0).angle_to(Vector(0, 2)), 90.0)
    assert math.isclose(Vector(1, 1).angle_to(Vector(-1, -1)), 180.0, abs_tol=1e-4)
    assert math.isclose(Vector(1, 0).angle_to(Vector(1, 1)), 45.0)
