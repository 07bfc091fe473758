"""Word statistics."""

import re
from collections import Counter

_WORD = re.compile(r"[A-Za-z0-9']+")


def words(text):
    return [w.lower().strip("'") for w in _WORD.findall(text) if w.strip("'")]


def word_count(text):
    """Number of words."""
    return len(words(text))


def word_frequencies(text, top=None):
    """``[(word, count)]`` sorted by count (descending), then alphabetically; the first ``top`` only."""
    counts = Counter(words(text))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if top is not None:
        ranked = ranked[:top]
    return ranked


def average_word_length(text):
    """Mean word length in characters, rounded to two decimals; 0.0 for no words."""
    ws = words(text)
    if not ws:
        return 0.0
    return round(sum(len(w) for w in ws) / len(ws), 2)
