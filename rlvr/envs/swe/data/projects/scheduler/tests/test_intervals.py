import pytest

from scheduler import Interval, merge, total_covered


def test_interval_basics():
    iv = Interval(10, 20)
    assert iv.duration() == 10
    assert iv.contains(10) and iv.contains(19) and not iv.contains(20)
    with pytest.raises(ValueError):
        Interval(5, 5)


def test_overlaps_is_half_open():
    assert Interval(0, 10).overlaps(Interval(9, 12))
    assert not Interval(0, 10).overlaps(Interval(10, 12))


def test_merge_joins_overlapping_and_adjacent():
    ivs = [Interval(30, 40), Interval(0, 10), Interval(5, 15), Interval(15, 20)]
    assert merge(ivs) == [Interval(0, 20), Interval(30, 40)]


def test_merge_keeps_contained():
    assert merge([Interval(0, 100), Interval(10, 20)]) == [Interval(0, 100)]


def test_total_covered():
    assert total_covered([Interval(0, 10), Interval(5, 15), Interval(20, 25)]) == 20
    assert total_covered([]) == 0
