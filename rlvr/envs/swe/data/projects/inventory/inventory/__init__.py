"""inventory: stock, pricing and orders for a small shop."""

from inventory.orders import Order, OrderError, place_order, shipping_cost
from inventory.pricing import apply_coupon, bulk_discount_rate, line_total, tax
from inventory.stock import Inventory, Item, OutOfStock

__all__ = [
    "Inventory", "Item", "Order", "OrderError", "OutOfStock", "apply_coupon", "bulk_discount_rate", "line_total",
    "place_order", "shipping_cost", "tax",
]
