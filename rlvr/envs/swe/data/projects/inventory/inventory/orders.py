"""Placing orders against an inventory."""

from inventory.pricing import apply_coupon, line_total, tax
from inventory.stock import OutOfStock

FREE_SHIPPING_FROM = 5000
BASE_SHIPPING = 499
PER_KG = 150


class OrderError(Exception):
    """An order cannot be placed as given."""


class Order:
    def __init__(self, lines, subtotal, discount, shipping, tax_cents):
        self.lines = lines
        self.subtotal = subtotal
        self.discount = discount
        self.shipping = shipping
        self.tax = tax_cents

    @property
    def total(self):
        return self.subtotal - self.discount + self.shipping + self.tax


def shipping_cost(amount, weight_grams):
    """Free from FREE_SHIPPING_FROM cents; otherwise a base fee plus PER_KG per started kilogram."""
    if amount >= FREE_SHIPPING_FROM:
        return 0
    kilos = -(-weight_grams // 1000)
    return BASE_SHIPPING + PER_KG * kilos


def place_order(inventory, lines, coupon=None, tax_percent=0):
    """Check stock for every line, then take it; either all lines are taken or none.

    ``lines`` is a list of ``(sku, quantity)``. Tax applies to the discounted subtotal.
    """
    if not lines:
        raise OrderError("an order needs at least one line")
    for sku, qty in lines:
        if qty <= 0:
            raise OrderError(f"quantity for {sku} must be positive")
        if inventory.get(sku).quantity < qty:
            raise OutOfStock(f"{sku}: {qty} requested, {inventory.get(sku).quantity} in stock")
    for sku, qty in lines:
        inventory.remove(sku, qty)
    subtotal = sum(line_total(inventory.get(sku).price_cents, qty) for sku, qty in lines)
    discounted = apply_coupon(subtotal, coupon) if coupon else subtotal
    weight = sum(inventory.get(sku).weight_grams * qty for sku, qty in lines)
    return Order(list(lines), subtotal, subtotal - discounted, shipping_cost(discounted, weight),
                 tax(discounted, tax_percent))
