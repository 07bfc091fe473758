import pytest

from scheduler import format_time, parse_time


def test_parse_time():
    assert parse_time("09:30") == 570
    assert parse_time("0:05") == 5
    assert parse_time("24:00") == 1440


@pytest.mark.parametrize("bad", ["9", "09:5", "25:00", "10:60", "24:01", "ab:cd"])
def test_parse_time_rejects(bad):
    with pytest.raises(ValueError):
        parse_time(bad)


def test_format_time():
    assert format_time(570) == "09:30"
    assert format_time(0) == "00:00"
    assert format_time(1440) == "24:00"
    with pytest.raises(ValueError):
        format_time(1441)
