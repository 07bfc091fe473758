"""parse_command reads any model output: one command, bounded, clean, and the reason when it had to repair."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.envs.textgames.commands import parse_command, not_understood

_TEXT = st.text(st.characters(blacklist_categories=()), max_size=400)
_PIECES = st.lists(st.sampled_from(["<action>", "</action>", "<think>", "</think>", "\n", ". ", " then ", "go east",
                                    "take coin", "\x00", "\ud800", "日本", "a" * 300]) | _TEXT, max_size=12)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_PIECES.map("".join) | _TEXT)
def test_any_text_gives_one_bounded_clean_command(text):
    parsed = parse_command(text, max_chars=120)
    assert len(parsed.command.encode("utf-8")) <= 120
    assert all(ch == " " or unicodedata.category(ch)[0] != "C" for ch in parsed.command)
    assert "\n" not in parsed.command and parsed.command == parsed.command.strip()
    assert (parsed.problem is None) == (parsed.problem is None and bool(parsed.command))


@given(st.from_regex(r"[a-z]{1,10}( [a-z0-9]{1,10}){0,4}", fullmatch=True).filter(lambda c: "then" not in c.split()))
def test_a_clean_command_passes_unchanged_in_tags_or_plain(command):
    for text in (command, f"<action>{command}</action>", f"I will act. <action>{command}</action>",
                 f"<think>plan. more</think>{command}"):
        assert parse_command(text) == type(parse_command(command))(command, None)


def test_repairs_are_named():
    assert parse_command("look\ngo east").problem == "only the first command was sent (one command per turn)"
    assert parse_command("<action>look").problem == "the <action> tag is not closed"
    assert parse_command("").problem == "no command found"
    assert parse_command("x" * 500).problem == "the command was cut to 180 bytes"
    assert not_understood("That's not a verb I recognise.\n") and not_understood("Nothing happens.")
    assert not not_understood("You pick up the coin.")
