"""The span helpers of rlvr/envs/deepsearch/pages.py and the layout of the deepsearch retrieval modules."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import rlvr
from rlvr.caches import TEXT_SPANS
from rlvr.envs.deepsearch.pages import page_spans, sentence_spans, split_pages


def test_sentence_spans_skip_blank_pieces_and_keep_punctuation():
    text = "Ada founded Orin. It grew!\n\nIs it big? yes"
    spans = sentence_spans(text)
    assert [text[a:b] for a, b in spans] == ["Ada founded Orin.", " It grew!", "Is it big?", " yes"]
    assert sentence_spans("") == ()


def test_split_pages_cuts_at_whitespace_in_the_second_half():
    text = "aaaa bbbb cccc dddd"
    assert split_pages(text, 10) == ((0, 10), (10, 19))  # cut after "bbbb " (the space at 9 lies in 5..10)
    assert split_pages("x" * 25, 10) == ((0, 10), (10, 20), (20, 25))  # no whitespace: hard cuts
    assert split_pages("", 10) == ((0, 0),)


@given(st.text(alphabet="ab .\n", max_size=200), st.integers(min_value=2, max_value=40))
def test_pages_cover_the_text_in_order(text, page_chars):
    spans = split_pages(text, page_chars)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a1 == b0 for (_, b0), (a1, _) in zip(spans, spans[1:]))
    assert all(0 < b - a <= page_chars for a, b in spans) or text == ""


def test_page_spans_are_memoised_and_cleared_by_clear_caches():
    rlvr.clear_caches()
    text = "one two three four five six seven"
    assert page_spans(text, 12) == split_pages(text, 12)
    assert len(TEXT_SPANS) == 1
    assert page_spans(text, 12) is page_spans(text, 12)
    rlvr.clear_caches()
    assert len(TEXT_SPANS) == 0


def test_retrieval_reexports_each_backend_from_its_own_module():
    from rlvr.envs.deepsearch import http_retriever, interface, retrieval

    for name in ("Hit", "Retriever", "RetrievalError"):
        assert getattr(retrieval, name) is getattr(interface, name)
    for name in ("HTTPRetriever", "fit_http_budget"):
        assert getattr(retrieval, name) is getattr(http_retriever, name)
    assert set(retrieval.__all__) >= {"Hit", "Retriever", "RetrievalError", "HTTPRetriever", "fit_http_budget",
                                      "BM25Retriever", "DenseRetriever", "make_retriever", "Tokenizer", "index_dir"}
