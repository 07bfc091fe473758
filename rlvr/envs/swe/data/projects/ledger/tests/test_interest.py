import pytest

from ledger import compound, loan_payment, loan_schedule, simple_interest


def test_simple_interest():
    assert simple_interest(100000, 0.05, 365) == 5000
    assert simple_interest(100000, 0.05, 73) == 1000
    assert simple_interest(100000, 0.06, 30, day_count=360) == 500


def test_compound_monthly():
    assert compound(100000, 0.12, 1) == 112683
    assert compound(100000, 0.10, 2, periods_per_year=1) == 121000


def test_compound_rejects_bad_periods():
    with pytest.raises(ValueError):
        compound(100, 0.1, 1, periods_per_year=0)


def test_loan_payment():
    assert loan_payment(1200000, 0.0, 12) == 100000
    assert loan_payment(1000000, 0.06, 12) == 86066


def test_loan_schedule_clears_balance():
    rows = loan_schedule(1000000, 0.06, 12)
    assert len(rows) == 12
    assert rows[0] == (1, 5000, 81066, 918934)
    assert rows[-1][3] == 0
    assert sum(r[2] for r in rows) == 1000000
