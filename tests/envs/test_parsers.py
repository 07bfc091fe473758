"""Tool-call parsers: formats, malformed input and property tests (never an exception)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.envs.parsers import HermesParser, JSONParser, ToolCall, get_parser
from rlvr.errors import ConfigError, ErrorKind

hermes = HermesParser()


def test_single_and_multiple_hermes_calls():
    p = hermes.parse('think <tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call>'
                     '<tool_call>\n```json\n{"name": "b", "arguments": "{\\"y\\": 2}"}\n```\n</tool_call>')
    assert p.calls == [ToolCall("a", {"x": 1}), ToolCall("b", {"y": 2})]
    assert p.errors == [] and p.answer is None


def test_openai_style_and_parameters_alias():
    p = hermes.parse('<tool_call>{"type": "function", "function": {"name": "f", "arguments": "{}"}}</tool_call>'
                     '<tool_call>{"name": "g", "parameters": {"k": "v"}}</tool_call>')
    assert p.calls == [ToolCall("f", {}), ToolCall("g", {"k": "v"})]


def test_answer_tag_inside_call_arguments_is_data():
    p = hermes.parse('<tool_call>{"name": "search", "arguments": {"q": "<answer> tag"}}</tool_call>')
    assert p.errors == [] and p.answer is None and p.calls == [ToolCall("search", {"q": "<answer> tag"})]


def test_answer_extraction():
    assert hermes.parse("so <answer> Paris </answer>").answer == "Paris"
    p = hermes.parse("<answer>unclosed")
    assert p.answer is None and p.errors[0].kind == ErrorKind.PARSE


@pytest.mark.parametrize(
    "text,needle",
    [
        ("<tool_call>{bad}</tool_call>", "invalid JSON"),
        ('<tool_call>{"arguments": {}}</tool_call>', 'no "name"'),
        ('<tool_call>{"name": "a", "arguments": [1]}</tool_call>', "must be a JSON object"),
        ('<tool_call>{"name": "a"', "never closed"),
        ('<tool_call><tool_call>{"name": "a"}</tool_call></tool_call>', "Nested"),
        ('{"name": "a"}</tool_call>', "without an opening"),
        ("<tool_call>" + "[" * 100_000 + "</tool_call>", "invalid JSON"),
        ("<tool_call>" + "x" * 300_000 + "</tool_call>", "at most"),
    ],
)
def test_malformed_calls_are_errors_not_exceptions(text, needle):
    p = hermes.parse(text)
    assert p.errors and needle in " ".join(e.message for e in p.errors)


def test_json_fallback_and_json_parser():
    text = 'I will call {"name": "search", "arguments": {"q": "x"}} now'
    assert hermes.parse(text).calls == [ToolCall("search", {"q": "x"})]
    assert HermesParser(json_fallback=False).parse(text).calls == []
    assert JSONParser().parse('[{"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}]').calls == [
        ToolCall("a", {}), ToolCall("b", {})]
    assert JSONParser().parse('{"tool_calls": [{"function": {"name": "a", "arguments": "{}"}}]}').calls == [ToolCall("a", {})]
    assert JSONParser().parse("{oops").errors
    assert hermes.parse('{"not": "a call"} and {"x": 1}').calls == []


def test_get_parser():
    assert isinstance(get_parser("json"), JSONParser)
    with pytest.raises(ConfigError, match="did you mean 'hermes'"):
        get_parser("hermse")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_never_raises(text):
    for parser in (HermesParser(), JSONParser()):
        p = parser.parse(text)
        assert all(isinstance(c, ToolCall) and isinstance(c.arguments, dict) for c in p.calls)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["<tool_call>", "</tool_call>", "<answer>", "</answer>", "{", "}", '"name"', ":",
                                 '"a"', ",", '"arguments"', "[", "]", "日本", "\x00", "\\", '"']), max_size=40))
def test_tag_soup_never_raises(parts):
    text = "".join(parts)
    p = hermes.parse(text)
    assert isinstance(p.errors, list)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=20).filter(lambda s: s.strip() == s and s), st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_roundtrip_wellformed_calls(name, args):
    body = json.dumps({'name': name, 'arguments': args}, ensure_ascii=False)
    text = f"<tool_call>{body}</tool_call>"
    p = hermes.parse(text)
    if "<tool_call>" in body or "</tool_call>" in body:  # the Hermes format cannot carry its own tags
        return
    assert p.errors == []
    assert p.calls == [ToolCall(name, args)]
