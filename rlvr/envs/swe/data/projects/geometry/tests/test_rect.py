import pytest

from geometry import Rect


def test_area_and_perimeter():
    r = Rect(0, 0, 3, 4)
    assert r.area() == 12 and r.perimeter() == 14


def test_rejects_negative_size():
    with pytest.raises(ValueError):
        Rect(0, 0, -1, 2)


def test_contains_includes_border():
    r = Rect(1, 1, 2, 2)
    assert r.contains(1, 1) and r.contains(3, 3) and r.contains(2, 2)
    assert not r.contains(3.01, 2) and not r.contains(0.99, 2)


def test_intersects_excludes_touching():
    a = Rect(0, 0, 2, 2)
    assert a.intersects(Rect(1, 1, 2, 2))
    assert not a.intersects(Rect(2, 0, 1, 1))
    assert not a.intersects(Rect(5, 5, 1, 1))


def test_intersection():
    assert Rect(0, 0, 4, 4).intersection(Rect(2, 1, 4, 1)) == Rect(2, 1, 2, 1)
    assert Rect(0, 0, 1, 1).intersection(Rect(3, 3, 1, 1)) is None


def test_union_bounds():
    assert Rect(0, 0, 1, 1).union_bounds(Rect(2, 3, 1, 2)) == Rect(0, 0, 3, 5)
