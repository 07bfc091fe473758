"""Interest and loans (amounts in cents, rates as fractions per year)."""

from ledger.money import round_half_up


def simple_interest(principal, annual_rate, days, day_count=365):
    """Interest in cents for ``days`` days (actual/365 by default)."""
    return round_half_up(principal * annual_rate * days / day_count)


def compound(principal, annual_rate, years, periods_per_year=12):
    """Balance in cents after compounding ``periods_per_year`` times a year for ``years`` years."""
    if periods_per_year < 1:
        raise ValueError("periods_per_year must be at least 1")
    rate = annual_rate / periods_per_year
    return round_half_up(principal * (1 + rate) ** (periods_per_year * years))


def loan_payment(principal, annual_rate, months):
    """Fixed monthly payment in cents of an amortising loan."""
    if months <= 0:
        raise ValueError("months must be positive")
    rate = annual_rate / 12
    if rate == 0:
        return round_half_up(principal / months)
    return round_half_up(principal * rate / (1 - (1 + rate) ** -months))


def loan_schedule(principal, annual_rate, months):
    """``[(month, interest, principal_paid, remaining)]``; the last payment clears the balance exactly."""
    payment = loan_payment(principal, annual_rate, months)
    rate = annual_rate / 12
    remaining = principal
    rows = []
    for month in range(1, months + 1):
        interest = round_half_up(remaining * rate)
        paid = payment - interest
        if month == months:
            paid = remaining
        remaining -= paid
        rows.append((month, interest, paid, remaining))
    return rows
