from textkit import human_list, ordinal, pluralize


def test_ordinal():
    assert [ordinal(n) for n in (1, 2, 3, 4)] == ["1st", "2nd", "3rd", "4th"]
    assert [ordinal(n) for n in (11, 12, 13, 20)] == ["11th", "12th", "13th", "20th"]
    assert [ordinal(n) for n in (21, 22, 101, 111)] == ["21st", "22nd", "101st", "111th"]


def test_pluralize():
    assert pluralize("cat") == "cats"
    assert pluralize("box") == "boxes"
    assert pluralize("city") == "cities"
    assert pluralize("day") == "days"
    assert pluralize("child") == "children"
    assert pluralize("cat", 1) == "cat"


def test_human_list():
    assert human_list([]) == ""
    assert human_list(["a"]) == "a"
    assert human_list(["a", "b"]) == "a and b"
    assert human_list(["a", "b", "c"], conjunction="or") == "a, b or c"
