from textkit import camel_case, snake_case, split_words, title_case


def test_split_words_handles_separators_and_humps():
    assert split_words("parseHttp response_code") == ["parse", "http", "response", "code"]
    assert split_words("  many   spaces--and__dashes ") == ["many", "spaces", "and", "dashes"]


def test_split_words_empty():
    assert split_words("   ") == []


def test_snake_case():
    assert snake_case("Hello World") == "hello_world"
    assert snake_case("userId") == "user_id"


def test_camel_case():
    assert camel_case("hello big world") == "helloBigWorld"
    assert camel_case("hello_world", upper_first=True) == "HelloWorld"
    assert camel_case("") == ""


def test_title_case_keeps_minor_words_lower_inside():
    assert title_case("the lord of the rings") == "The Lord of the Rings"
    assert title_case("what it is for") == "What It Is For"


def test_title_case_single_word():
    assert title_case("of") == "Of"
