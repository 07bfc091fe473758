import pytest

from ledger import format_cents, parse_amount, round_half_up


def test_round_half_up():
    assert round_half_up(2.5) == 3
    assert round_half_up(2.4) == 2
    assert round_half_up(-2.5) == -3
    assert round_half_up(0) == 0


def test_parse_amount():
    assert parse_amount("$1,234.56") == 123456
    assert parse_amount("12.5") == 1250
    assert parse_amount("-$3") == -300
    assert parse_amount(" 7 ") == 700


@pytest.mark.parametrize("bad", ["", "1,23", "$1.234", "abc", "1.2.3"])
def test_parse_amount_rejects(bad):
    with pytest.raises(ValueError):
        parse_amount(bad)


def test_format_cents():
    assert format_cents(123456) == "$1,234.56"
    assert format_cents(-5) == "-$0.05"
    assert format_cents(100000000) == "$1,000,000.00"
    assert format_cents(99, symbol="EUR ") == "EUR 0.99"
