"""Sentence and page spans of a document's text, as ``(start, end)`` character offsets.

``search`` picks its snippet among the sentences, ``open`` and ``find`` number pages with them, and
the oracle opens the pages that overlap gold evidence. The spans are memoised in the
``deepsearch.spans`` cache of :mod:`rlvr.caches` (emptied by :func:`rlvr.clear_caches`).
"""

from __future__ import annotations

import re

from rlvr.caches import TEXT_SPANS

__all__ = ["sentence_spans", "page_spans", "split_pages"]


_SENT = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")


def sentence_spans(text: str) -> tuple[tuple[int, int], ...]:
    """Sentence spans of ``text`` (memoised in the ``deepsearch.spans`` cache of :mod:`rlvr.caches`)."""
    return TEXT_SPANS.get_or_build(("sentences", text), lambda: tuple(
        (m.start(), m.end()) for m in _SENT.finditer(text) if m.group().strip()))


def page_spans(text: str, page_chars: int) -> tuple[tuple[int, int], ...]:
    """Page spans of about ``page_chars``, cut at whitespace when one lies in the second half (memoised)."""
    return TEXT_SPANS.get_or_build(("pages", text, page_chars), lambda: split_pages(text, page_chars))


def split_pages(text: str, page_chars: int) -> tuple[tuple[int, int], ...]:
    """The pages of :func:`page_spans`, not memoised: consecutive spans covering ``text`` (one empty span for "")."""
    spans, start, n = [], 0, len(text)
    while start < n:
        end = min(n, start + page_chars)
        if end < n:
            cut = text.rfind(" ", start + page_chars // 2, end)
            if cut > start:
                end = cut + 1
        spans.append((start, end))
        start = end
    return tuple(spans) or ((0, 0),)
