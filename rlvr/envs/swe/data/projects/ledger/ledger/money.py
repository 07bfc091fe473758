"""Parsing, formatting and rounding of amounts in cents."""

import math
import re

_AMOUNT = re.compile(r"^(-)?\$?(\d{1,3}(?:,\d{3})*|\d+)(?:\.(\d{1,2}))?$")


def round_half_up(value):
    """Round to the nearest integer, halves away from zero (2.5 -> 3, -2.5 -> -3)."""
    if value >= 0:
        return int(math.floor(value + 0.5))
    return -int(math.floor(-value + 0.5))


def parse_amount(text):
    """'$1,234.5' -> 123450 cents; '-$3' -> -300. Raises ValueError for anything else."""
    match = _AMOUNT.match(text.strip())
    if match is None:
        raise ValueError(f"not an amount: {text!r}")
    sign, whole, frac = match.groups()
    cents = int(whole.replace(",", "")) * 100
    if frac:
        cents += int(frac.ljust(2, "0"))
    return -cents if sign else cents


def format_cents(cents, symbol="$"):
    """123456 -> '$1,234.56'; -5 -> '-$0.05'."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{symbol}{whole:,}.{frac:02d}"
