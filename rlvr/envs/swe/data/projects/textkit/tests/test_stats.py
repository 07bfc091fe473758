from textkit import average_word_length, word_count, word_frequencies


def test_word_count():
    assert word_count("It's a dog's life, isn't it?") == 6
    assert word_count("") == 0


def test_word_frequencies_order():
    text = "b a c b a b"
    assert word_frequencies(text) == [("b", 3), ("a", 2), ("c", 1)]


def test_word_frequencies_top():
    assert word_frequencies("x y y z z z", top=2) == [("z", 3), ("y", 2)]


def test_average_word_length():
    assert average_word_length("aa bbbb") == 3.0
    assert average_word_length("a bb") == 1.5
    assert average_word_length("...") == 0.0
