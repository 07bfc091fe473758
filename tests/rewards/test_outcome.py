"""Outcome rewards: SQuAD normalisation, exact match, token F1, exact-answer extraction, format check."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.rewards.outcome import (
    exact_match,
    extract_exact_answer,
    format_ok,
    format_reward,
    normalize_answer,
    token_f1,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  an   Apple, a day ", "apple day"),
        ("Theatre of the Absurd", "theatre of absurd"),
        ("U.S.A.", "usa"),
        ("", ""),
    ],
)
def test_normalize_answer_squad_rules(raw, expected):
    assert normalize_answer(raw) == expected


def test_exact_match_with_aliases():
    assert exact_match("the Big Apple", ["New York City", "Big Apple"]) == 1.0
    assert exact_match("New York", ["New York City", "Big Apple"]) == 0.0
    assert exact_match("1,984", "1984") == 1.0  # punctuation is dropped


def test_token_f1_values():
    assert token_f1("Marla Quist", "Marla Quist") == 1.0
    assert token_f1("Marla", "Marla Quist") == pytest.approx(2 / 3)
    assert token_f1("nothing shared", "Marla Quist") == 0.0
    # HotpotQA rule: yes/no answers get no partial credit
    assert token_f1("yes", "yes it is") == 0.0
    assert token_f1("no", "no") == 1.0
    # best alias counts
    assert token_f1("Big Apple", ["New York City", "the Big Apple"]) == 1.0


def test_bad_gold_raises_clearly():
    with pytest.raises(ValueError, match="non-empty list of alias strings"):
        exact_match("x", [])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Quist founded Orin [doc3].\nExact answer: Tarrow", "Tarrow"),
        ("## Explanation\nfoo [doc1]\n## Exact Answer\nTarrow Falls\n## References\n[doc1]", "Tarrow Falls"),
        ("**Exact Answer:** 1951", "1951"),
        ("Tarrow [doc12]", "Tarrow"),
        ("Tarrow [doc12, doc3]", "Tarrow"),
        ("exact answer: first\nExact answer: second", "second"),
        ("A [link](http://x) answer", "A [link](http://x) answer"),
    ],
)
def test_extract_exact_answer(text, expected):
    assert extract_exact_answer(text) == expected


def test_format_checks():
    assert format_ok("<think>x</think><answer>Paris</answer>")
    assert not format_ok("<answer>Paris")
    assert not format_ok("<answer></answer>")
    assert not format_ok("<answer>a</answer><answer>b</answer>")
    assert not format_ok("<tool_call><tool_call>{}</tool_call></tool_call>")
    assert format_ok('<tool_call>{"name": "s"}</tool_call>', require_answer=False)
    assert format_reward("<answer>x</answer>") == 1.0
    assert format_reward("<answer>x", reward=0.0, penalty=-2.0) == -2.0


text_st = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)


@settings(max_examples=200, deadline=None)
@given(text_st)
def test_normalisation_is_idempotent(s):
    n = normalize_answer(s)
    assert normalize_answer(n) == n
    assert n == n.strip() and "  " not in n


@settings(max_examples=200, deadline=None)
@given(text_st, st.lists(text_st, min_size=1, max_size=4))
def test_metrics_are_bounded_and_consistent(pred, golds):
    em, f1 = exact_match(pred, golds), token_f1(pred, golds)
    assert em in (0.0, 1.0)
    assert 0.0 <= f1 <= 1.0
    if em == 1.0 and normalize_answer(pred):
        assert f1 == 1.0


@settings(max_examples=200, deadline=None)
@given(text_st)
def test_prediction_matches_itself(s):
    assert exact_match(s, s) == 1.0
    if normalize_answer(s):
        assert token_f1(s, s) == 1.0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_extract_exact_answer_never_fails(s):
    out = extract_exact_answer(s)
    assert isinstance(out, str) and out == out.strip()
    assert isinstance(format_ok(s), bool)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="[]\n#*", blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(lambda s: s.strip()),
       st.lists(st.from_regex(r"[a-z]{1,4}[0-9]{1,4}", fullmatch=True), max_size=3))
def test_labelled_answer_survives_citations(answer, ids):
    text = "Some reasoning " + " ".join(f"[{i}]" for i in ids) + f"\nExact answer: {answer}"
    assert extract_exact_answer(text) == " ".join(answer.split()).strip("*").strip()
