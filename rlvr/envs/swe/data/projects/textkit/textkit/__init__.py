"""textkit: small text utilities."""

from textkit.case import camel_case, snake_case, split_words, title_case
from textkit.english import human_list, ordinal, pluralize
from textkit.slug import slugify
from textkit.stats import average_word_length, word_count, word_frequencies
from textkit.wrap import truncate, wrap

__all__ = [
    "average_word_length", "camel_case", "human_list", "ordinal", "pluralize", "slugify", "snake_case",
    "split_words", "title_case", "truncate", "word_count", "word_frequencies", "wrap",
]
