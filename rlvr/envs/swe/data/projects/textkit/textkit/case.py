"""Case conversion between phrases, snake_case and camelCase."""

import re

_SEPARATORS = re.compile(r"[\s_\-]+")
_HUMPS = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

MINOR_WORDS = frozenset({"a", "an", "and", "as", "at", "but", "by", "for", "in", "of", "on", "or", "the", "to"})


def split_words(text):
    """Split a phrase or identifier into lowercase words.

    >>> split_words("parseHttp response_code")
    ['parse', 'http', 'response', 'code']
    """
    words = []
    for chunk in _SEPARATORS.split(text.strip()):
        if not chunk:
            continue
        for part in _HUMPS.split(chunk):
            words.append(part.lower())
    return words


def snake_case(text):
    """'Hello World' -> 'hello_world'."""
    return "_".join(split_words(text))


def camel_case(text, upper_first=False):
    """'hello world' -> 'helloWorld' ('HelloWorld' with upper_first)."""
    words = split_words(text)
    if not words:
        return ""
    head = words[0].capitalize() if upper_first else words[0]
    return head + "".join(w.capitalize() for w in words[1:])


def title_case(text, minor_words=MINOR_WORDS):
    """Capitalise every word except minor words; the first and last words are always capitalised."""
    words = text.split()
    out = []
    for i, word in enumerate(words):
        lower = word.lower()
        if 0 < i < len(words) - 1 and lower in minor_words:
            out.append(lower)
        else:
            out.append(lower[:1].upper() + lower[1:])
    return " ".join(out)
