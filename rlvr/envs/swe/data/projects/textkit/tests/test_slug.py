from textkit import slugify


def test_slugify_basic():
    assert slugify("Hello, World!") == "hello-world"


def test_slugify_strips_accents():
    assert slugify("Crème Brûlée") == "creme-brulee"


def test_slugify_custom_separator():
    assert slugify("a b  c", sep="_") == "a_b_c"


def test_slugify_max_length_keeps_whole_words():
    assert slugify("the quick brown fox", max_length=10) == "the-quick"
    assert slugify("the quick brown fox", max_length=9) == "the-quick"
    assert slugify("the quick brown fox", max_length=8) == "the"


def test_slugify_max_length_single_long_word():
    assert slugify("supercalifragilistic", max_length=5) == "super"


def test_slugify_short_text_unchanged_by_limit():
    assert slugify("tiny", max_length=10) == "tiny"
