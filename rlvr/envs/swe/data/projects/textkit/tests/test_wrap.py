import pytest

from textkit import truncate, wrap


def test_wrap_greedy():
    assert wrap("the quick brown fox jumps", 10) == ["the quick", "brown fox", "jumps"]


def test_wrap_exact_width_fits():
    assert wrap("abcd efgh", 9) == ["abcd efgh"]


def test_wrap_long_word_alone():
    assert wrap("a verylongword b", 5) == ["a", "verylongword", "b"]


def test_wrap_rejects_bad_width():
    with pytest.raises(ValueError):
        wrap("x", 0)


def test_truncate():
    assert truncate("hello world", 8) == "hello..."
    assert truncate("hello", 5) == "hello"
    assert truncate("hello world", 7, ellipsis="~") == "hello~"


def test_truncate_too_short():
    with pytest.raises(ValueError):
        truncate("hello", 2)
