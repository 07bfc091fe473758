"""Prices in cents: bulk discounts, coupons and tax."""

BULK_TIERS = ((100, 15), (50, 10), (10, 5))  # (minimum quantity, percent off), largest first
COUPONS = {"SAVE10": ("percent", 10), "FLAT500": ("flat", 500)}


def _round_cents(value):
    return int(value + 0.5)


def bulk_discount_rate(quantity):
    """Percent off for buying ``quantity`` units."""
    for minimum, percent in BULK_TIERS:
        if quantity >= minimum:
            return percent
    return 0


def line_total(price_cents, quantity):
    """Price of one order line after the bulk discount, rounded half up."""
    gross = price_cents * quantity
    rate = bulk_discount_rate(quantity)
    return _round_cents(gross * (100 - rate) / 100)


def apply_coupon(subtotal, code):
    """Subtotal after a coupon; unknown codes raise KeyError, totals never go below zero."""
    kind, amount = COUPONS[code.upper()]
    if kind == "percent":
        return _round_cents(subtotal * (100 - amount) / 100)
    return max(0, subtotal - amount)


def tax(amount, rate_percent):
    """Tax on ``amount`` cents, rounded half up."""
    return _round_cents(amount * rate_percent / 100)
