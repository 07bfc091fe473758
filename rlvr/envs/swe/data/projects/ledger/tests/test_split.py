import pytest

from ledger import split_by_weights, split_evenly


def test_split_evenly():
    assert split_evenly(1000, 3) == [334, 333, 333]
    assert split_evenly(900, 3) == [300, 300, 300]
    assert split_evenly(2, 4) == [1, 1, 0, 0]


def test_split_evenly_rejects_zero_parts():
    with pytest.raises(ValueError):
        split_evenly(10, 0)


def test_split_by_weights():
    assert split_by_weights(1000, [1, 1, 1]) == [334, 333, 333]
    assert split_by_weights(100, [1, 3]) == [25, 75]
    assert split_by_weights(10, [1, 2, 2]) == [2, 4, 4]
    assert split_by_weights(7, [0, 1, 1]) == [0, 4, 3]


def test_split_by_weights_sums_to_total():
    shares = split_by_weights(12345, [3, 5, 7, 11])
    assert sum(shares) == 12345


def test_split_by_weights_rejects_bad_weights():
    with pytest.raises(ValueError):
        split_by_weights(10, [0, 0])
    with pytest.raises(ValueError):
        split_by_weights(10, [1, -1])
