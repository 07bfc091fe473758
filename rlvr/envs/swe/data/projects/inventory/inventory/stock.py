"""Items and stock levels."""


class OutOfStock(Exception):
    """Not enough units of an item."""


class Item:
    def __init__(self, sku, name, price_cents, quantity=0, weight_grams=0):
        if price_cents < 0 or quantity < 0:
            raise ValueError("price and quantity must be non-negative")
        self.sku = sku
        self.name = name
        self.price_cents = price_cents
        self.quantity = quantity
        self.weight_grams = weight_grams


class Inventory:
    def __init__(self):
        self._items = {}

    def add(self, item):
        if item.sku in self._items:
            raise ValueError(f"duplicate sku {item.sku}")
        self._items[item.sku] = item

    def get(self, sku):
        try:
            return self._items[sku]
        except KeyError:
            raise KeyError(f"unknown sku {sku}") from None

    def restock(self, sku, units):
        if units <= 0:
            raise ValueError("units must be positive")
        self.get(sku).quantity += units

    def remove(self, sku, units):
        item = self.get(sku)
        if units > item.quantity:
            raise OutOfStock(f"{sku}: {units} requested, {item.quantity} in stock")
        item.quantity -= units

    def low_stock(self, threshold):
        """SKUs with fewer than ``threshold`` units, fewest first (ties by sku)."""
        low = [it for it in self._items.values() if it.quantity < threshold]
        return [it.sku for it in sorted(low, key=lambda it: (it.quantity, it.sku))]

    def total_value(self):
        return sum(it.price_cents * it.quantity for it in self._items.values())
