import pytest

from inventory import Inventory, Item, OrderError, OutOfStock, place_order, shipping_cost


def make():
    inv = Inventory()
    inv.add(Item("A1", "apple", 50, 100, weight_grams=200))
    inv.add(Item("B2", "bread", 250, 5, weight_grams=500))
    return inv


def test_shipping_cost():
    assert shipping_cost(5000, 10_000) == 0
    assert shipping_cost(4999, 0) == 499
    assert shipping_cost(100, 1) == 649
    assert shipping_cost(100, 1000) == 649
    assert shipping_cost(100, 1001) == 799


def test_place_order_totals():
    inv = make()
    order = place_order(inv, [("A1", 10), ("B2", 2)], tax_percent=10)
    assert order.subtotal == 475 + 500
    assert order.discount == 0
    assert order.shipping == 499 + 150 * 3
    assert order.tax == 98
    assert order.total == 975 + 949 + 98
    assert inv.get("A1").quantity == 90 and inv.get("B2").quantity == 3


def test_place_order_with_coupon():
    order = place_order(make(), [("B2", 4)], coupon="SAVE10")
    assert order.subtotal == 1000 and order.discount == 100


def test_place_order_is_atomic():
    inv = make()
    with pytest.raises(OutOfStock):
        place_order(inv, [("A1", 1), ("B2", 6)])
    assert inv.get("A1").quantity == 100 and inv.get("B2").quantity == 5


def test_place_order_validation():
    with pytest.raises(OrderError):
        place_order(make(), [])
    with pytest.raises(OrderError):
        place_order(make(), [("A1", 0)])
