import pytest

from inventory import Inventory, Item, OutOfStock


def make():
    inv = Inventory()
    inv.add(Item("A1", "apple", 50, 10))
    inv.add(Item("B2", "bread", 250, 2))
    inv.add(Item("C3", "cheese", 700, 2))
    return inv


def test_add_rejects_duplicates():
    inv = make()
    with pytest.raises(ValueError):
        inv.add(Item("A1", "again", 1))


def test_unknown_sku():
    with pytest.raises(KeyError):
        make().get("ZZ")


def test_restock_and_remove():
    inv = make()
    inv.restock("B2", 3)
    inv.remove("B2", 5)
    assert inv.get("B2").quantity == 0
    with pytest.raises(OutOfStock):
        inv.remove("B2", 1)
    with pytest.raises(ValueError):
        inv.restock("B2", 0)


def test_low_stock_order():
    assert make().low_stock(3) == ["B2", "C3"]
    assert make().low_stock(2) == []
    assert make().low_stock(11) == ["B2", "C3", "A1"]


def test_total_value():
    assert make().total_value() == 50 * 10 + 250 * 2 + 700 * 2


def test_item_validation():
    with pytest.raises(ValueError):
        Item("X", "bad", -1)
