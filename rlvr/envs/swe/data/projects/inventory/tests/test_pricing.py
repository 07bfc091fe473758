import pytest

from inventory import apply_coupon, bulk_discount_rate, line_total, tax


def test_bulk_tiers():
    assert [bulk_discount_rate(q) for q in (1, 9, 10, 49, 50, 99, 100, 500)] == [0, 0, 5, 5, 10, 10, 15, 15]


def test_line_total():
    assert line_total(199, 3) == 597
    assert line_total(199, 10) == 1891
    assert line_total(100, 100) == 8500


def test_coupons():
    assert apply_coupon(1000, "SAVE10") == 900
    assert apply_coupon(1005, "save10") == 905
    assert apply_coupon(1000, "FLAT500") == 500
    assert apply_coupon(300, "FLAT500") == 0
    with pytest.raises(KeyError):
        apply_coupon(100, "BOGUS")


def test_tax():
    assert tax(1000, 8) == 80
    assert tax(999, 7.5) == 75
    assert tax(0, 20) == 0
